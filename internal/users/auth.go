package users

import (
	"context"
	"errors"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/token"
)

// Identity is who a user token belongs to.
type Identity struct {
	User  store.User
	Token store.Token
}

// Authenticate finds the user a token belongs to. A token that is unknown,
// revoked or expired is refused (Unauthenticated). What it reads is cached
// for CacheFor.
func (s *Service) Authenticate(ctx context.Context, tok string) (Identity, error) {
	hash := token.Hash(tok)
	now := s.now()
	s.mu.Lock()
	c, ok := s.tokens[hash]
	s.mu.Unlock()
	if !ok || now.Sub(c.at) >= s.cacheFor() || now.Before(c.at) {
		t, err := s.Store.TokenByHash(ctx, hash)
		if errors.Is(err, api.ErrNotFound) {
			return Identity{}, api.Unauthenticated("the bearer token is not valid for this server")
		}
		if err != nil {
			return Identity{}, err
		}
		u, err := s.Store.UserByName(ctx, t.User)
		if errors.Is(err, api.ErrNotFound) {
			return Identity{}, api.Unauthenticated("the bearer token's user no longer exists")
		}
		if err != nil {
			return Identity{}, err
		}
		c = cachedToken{tok: t, user: u, at: now}
		s.mu.Lock()
		if s.tokens == nil {
			s.tokens = map[string]cachedToken{}
		}
		s.tokens[hash] = c
		s.mu.Unlock()
	}
	switch {
	case !c.tok.RevokedAt.IsZero():
		return Identity{}, api.Unauthenticated("the bearer token %s (%s) was revoked at %s", c.tok.Name, c.tok.ID, c.tok.RevokedAt.Format(time.RFC3339))
	case !c.tok.ExpiresAt.IsZero() && !now.Before(c.tok.ExpiresAt):
		return Identity{}, api.Unauthenticated("the bearer token %s (%s) expired at %s; make a new one with `paddock token create`", c.tok.Name, c.tok.ID, c.tok.ExpiresAt.Format(time.RFC3339))
	}
	s.mu.Lock()
	if s.used == nil {
		s.used = map[string]time.Time{}
	}
	s.used[c.tok.ID] = now
	s.mu.Unlock()
	return Identity{User: c.user, Token: c.tok}, nil
}

// Principal is a user acting in ws: their role there (admins are Owner
// everywhere). A user with no role in ws is refused (Forbidden).
func (s *Service) Principal(ctx context.Context, id Identity, ws string) (authz.Principal, error) {
	p := authz.Principal{User: id.User.Name, Role: authz.Owner}
	if id.User.Admin {
		return p, nil
	}
	key := roleKey{ws, id.User.Name}
	now := s.now()
	s.mu.Lock()
	c, ok := s.roles[key]
	s.mu.Unlock()
	if !ok || now.Sub(c.at) >= s.cacheFor() || now.Before(c.at) {
		role, err := s.Store.RoleOf(ctx, ws, id.User.Name)
		switch {
		case errors.Is(err, api.ErrNotFound):
			c = cachedRole{err: api.Forbidden("%s has no role in workspace %s; an Owner can give one with `paddock user set-role`", id.User.Name, ws), at: now}
		case err != nil:
			return authz.Principal{}, err
		default:
			c = cachedRole{role: authz.Role(role), at: now}
		}
		s.mu.Lock()
		if s.roles == nil {
			s.roles = map[roleKey]cachedRole{}
		}
		s.roles[key] = c
		s.mu.Unlock()
	}
	if c.err != nil {
		return authz.Principal{}, c.err
	}
	p.Role = c.role
	return p, nil
}

// Run stores when tokens were last used, every interval (10 s when 0),
// and once more when ctx ends.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.FlushUsage(context.WithoutCancel(ctx))
			return
		case <-t.C:
			s.FlushUsage(ctx)
		}
	}
}

// FlushUsage stores the last-use times gathered since the last flush.
func (s *Service) FlushUsage(ctx context.Context) error {
	s.mu.Lock()
	used := s.used
	s.used = nil
	s.mu.Unlock()
	return s.Store.TouchTokens(ctx, used)
}
