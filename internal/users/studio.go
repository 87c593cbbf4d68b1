package users

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/token"
)

// Studio sign-in. `paddock studio` asks for a one-time link (a pdl_ code
// good for LinkLife); the browser redeems it for a session (a pds_ token
// good for SessionLife) in one transaction that revokes the code, so a code
// works once, on every server sharing the database. Both are stored as the
// user's tokens, only as hashes: `paddock token list` shows them,
// `paddock token revoke` ends a session, and they expire, are revoked and
// are cached (1 s) like any token. They are good only in the studio (the
// API refuses them as bearer tokens).
const (
	// LinkLife is how long a sign-in link works.
	LinkLife = 5 * time.Minute
	// SessionLife is how long a studio session lasts.
	SessionLife = 12 * time.Hour
	// LinkTokenName and SessionTokenName start the names of the tokens
	// behind a link and a session.
	LinkTokenName    = "studio-link-"
	SessionTokenName = "studio-session-"
)

// CreateSigninLink makes a one-time studio sign-in code for the caller.
func (s *Service) CreateSigninLink(ctx context.Context, by Identity) (string, time.Time, error) {
	now := s.now()
	code := token.NewLink()
	t := store.Token{ID: token.NewID(), User: by.User.Name, Name: LinkTokenName + shortID(), Hash: token.Hash(code),
		CreatedAt: now, ExpiresAt: now.Add(LinkLife)}
	if err := s.Store.CreateToken(ctx, t); err != nil {
		return "", time.Time{}, err
	}
	return code, t.ExpiresAt, nil
}

// Redeem exchanges a sign-in code for a session, once: the code is revoked
// in the same transaction that stores the session.
func (s *Service) Redeem(ctx context.Context, code string) (string, Identity, error) {
	bad := api.Unauthenticated("this sign-in link is not valid: it was used already, has expired (links last %s) or was never made; run `paddock studio` for a new one", LinkLife)
	if !strings.HasPrefix(code, token.LinkPrefix) {
		return "", Identity{}, bad
	}
	t, err := s.Store.TokenByHash(ctx, token.Hash(code))
	switch {
	case errors.Is(err, api.ErrNotFound):
		return "", Identity{}, bad
	case err != nil:
		return "", Identity{}, err
	case !strings.HasPrefix(t.Name, LinkTokenName) || !t.RevokedAt.IsZero() || !s.now().Before(t.ExpiresAt):
		return "", Identity{}, bad
	}
	u, err := s.Store.UserByName(ctx, t.User)
	if errors.Is(err, api.ErrNotFound) {
		return "", Identity{}, bad
	} else if err != nil {
		return "", Identity{}, err
	}
	now := s.now()
	session, next := s.newSession(u.Name, now)
	if err := s.Store.RotateToken(ctx, t.ID, now, next); errors.Is(err, api.ErrNotFound) {
		return "", Identity{}, bad // redeemed a moment ago, here or by another server
	} else if err != nil {
		return "", Identity{}, err
	}
	s.forgetToken(t.Hash)
	return session, Identity{User: u, Token: next}, nil
}

// StartSession makes a studio session for a user who signed in with one
// of their tokens.
func (s *Service) StartSession(ctx context.Context, id Identity) (string, Identity, error) {
	session, t := s.newSession(id.User.Name, s.now())
	if err := s.Store.CreateToken(ctx, t); err != nil {
		return "", Identity{}, err
	}
	return session, Identity{User: id.User, Token: t}, nil
}

// EndSession revokes a studio session (signing out).
func (s *Service) EndSession(ctx context.Context, id Identity) error {
	if !strings.HasPrefix(id.Token.Name, SessionTokenName) {
		return api.Invalid("token", "only a studio session can be ended here")
	}
	err := s.Store.RevokeToken(ctx, id.Token.ID, s.now())
	s.forgetToken(id.Token.Hash)
	if errors.Is(err, api.ErrNotFound) {
		return nil // ended already
	}
	return err
}

func (s *Service) newSession(user string, now time.Time) (string, store.Token) {
	session := token.NewSession()
	return session, store.Token{ID: token.NewID(), User: user, Name: SessionTokenName + shortID(), Hash: token.Hash(session),
		CreatedAt: now, ExpiresAt: now.Add(SessionLife)}
}

// shortID tells a user's links and sessions apart in their token list.
func shortID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
