package users

import (
	"context"
	"errors"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/token"
)

// maxTokenLife bounds expires_in_seconds: ten years.
const maxTokenLife = 10 * 365 * 24 * time.Hour

// CreateToken makes a token for the caller, shown once.
func (s *Service) CreateToken(ctx context.Context, by Identity, in api.TokenCreate) (api.Token, error) {
	if !userName.MatchString(in.Name) {
		return api.Token{}, api.Invalid("name", "token name %q must be 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter", in.Name)
	}
	if in.ExpiresInSeconds < 0 || time.Duration(in.ExpiresInSeconds) > maxTokenLife/time.Second {
		return api.Token{}, api.Invalid("expires_in_seconds", "expires_in_seconds must be 0 (never) to %d (ten years), not %d",
			int64(maxTokenLife/time.Second), in.ExpiresInSeconds)
	}
	now := s.now()
	var expires time.Time
	if in.ExpiresInSeconds > 0 {
		expires = now.Add(time.Duration(in.ExpiresInSeconds) * time.Second)
	}
	tok, t := newToken(by.User.Name, in.Name, now, expires)
	if err := s.Store.CreateToken(ctx, t); err != nil {
		return api.Token{}, err
	}
	out := tokenToAPI(t)
	out.Token = tok
	return out, nil
}

// Tokens lists the caller's tokens; with all, every user's (admins only).
func (s *Service) Tokens(ctx context.Context, by Identity, all bool) ([]api.Token, error) {
	user := by.User.Name
	if all {
		if !by.User.Admin {
			return nil, api.Forbidden("only the server's admin can list every user's tokens")
		}
		user = ""
	}
	ts, err := s.Store.Tokens(ctx, user)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	for i, t := range ts { // uses not yet stored
		if at, ok := s.used[t.ID]; ok && at.After(t.LastUsedAt) {
			ts[i].LastUsedAt = at
		}
	}
	s.mu.Unlock()
	out := make([]api.Token, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenToAPI(t))
	}
	return out, nil
}

// Revoke revokes one of the caller's live tokens, by id or name (an
// admin may revoke anyone's by id). It stops working at once here.
func (s *Service) Revoke(ctx context.Context, by Identity, idOrName string) (api.Token, error) {
	t, err := s.findLive(ctx, by, idOrName)
	if err != nil {
		return api.Token{}, err
	}
	if err := s.Store.RevokeToken(ctx, t.ID, s.now()); err != nil {
		return api.Token{}, err
	}
	s.forgetToken(t.Hash)
	t.RevokedAt = s.now()
	return tokenToAPI(t), nil
}

// findLive finds a live token the caller may revoke.
func (s *Service) findLive(ctx context.Context, by Identity, idOrName string) (store.Token, error) {
	user := by.User.Name
	if by.User.Admin {
		user = ""
	}
	ts, err := s.Store.Tokens(ctx, user)
	if err != nil {
		return store.Token{}, err
	}
	for _, t := range ts {
		if t.RevokedAt.IsZero() && (t.ID == idOrName || t.Name == idOrName && t.User == by.User.Name) {
			return t, nil
		}
	}
	return store.Token{}, api.NotFound("you have no live token with id or name %q (`paddock token list`)", idOrName)
}

// Rotate replaces the token the caller used with a new one of the same
// name and lifetime, revoking it, and returns the new one (shown once).
// Rotating the admin's bootstrap token also rewrites the data dir's copy.
func (s *Service) Rotate(ctx context.Context, by Identity) (api.Token, error) {
	old := by.Token
	now := s.now()
	var expires time.Time
	if !old.ExpiresAt.IsZero() {
		expires = now.Add(old.ExpiresAt.Sub(old.CreatedAt))
	}
	tok, next := newToken(old.User, old.Name, now, expires)
	if err := s.Store.RotateToken(ctx, old.ID, now, next); err != nil {
		return api.Token{}, err
	}
	s.forgetToken(old.Hash)
	if by.User.Admin && old.Name == AdminTokenName && s.OnAdminRotated != nil {
		if err := s.OnAdminRotated(tok); err != nil {
			return api.Token{}, errors.Join(errors.New("the admin token was rotated but writing it to the data dir failed; use the token in this answer"), err)
		}
	}
	out := tokenToAPI(next)
	out.Token = tok
	return out, nil
}

// EnsureAdmin makes the admin user and, unless it is already stored, their
// bootstrap token (the data dir's copy). A bootstrap token that was
// revoked stays revoked: Revoked reports it.
func (s *Service) EnsureAdmin(ctx context.Context, name, tok string) (revoked bool, err error) {
	now := s.now()
	if err := s.Store.PutUser(ctx, store.User{Name: name, Admin: true, CreatedAt: now}); err != nil {
		return false, err
	}
	_, t := newToken(name, AdminTokenName, now, time.Time{})
	t.Hash = token.Hash(tok)
	got, err := s.Store.TokenByHash(ctx, t.Hash)
	switch {
	case err == nil:
		return !got.RevokedAt.IsZero(), nil
	case !errors.Is(err, api.ErrNotFound):
		return false, err
	}
	// A new bootstrap token replaces a live one of the same name.
	ts, err := s.Store.Tokens(ctx, name)
	if err != nil {
		return false, err
	}
	for _, old := range ts {
		if old.Name == AdminTokenName && old.RevokedAt.IsZero() {
			return false, s.Store.RotateToken(ctx, old.ID, now, t)
		}
	}
	return false, s.Store.CreateToken(ctx, t)
}

func (s *Service) forgetToken(hash string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, hash)
}

func tokenToAPI(t store.Token) api.Token {
	opt := func(v time.Time) *time.Time {
		if v.IsZero() {
			return nil
		}
		return &v
	}
	return api.Token{ID: t.ID, Name: t.Name, User: t.User, CreatedAt: t.CreatedAt,
		ExpiresAt: opt(t.ExpiresAt), LastUsedAt: opt(t.LastUsedAt), RevokedAt: opt(t.RevokedAt)}
}
