// Package users holds the people who use a workspace server: users, their
// role in each workspace, and their bearer tokens (named, expiring,
// revocable, stored only as hashes). Authenticate answers from memory:
// what it read from the store stays valid for CacheFor (1 s), so a token
// revoked or a role changed — here or by another server on the same
// database — takes effect within that time, and at once on this server.
package users

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/token"
)

// AdminTokenName names the admin's bootstrap token, the one `paddock up`
// writes to the data dir and the CLI config.
const AdminTokenName = "admin"

// Service adds, lists and removes users, gives them roles, and makes,
// checks and revokes their tokens.
type Service struct {
	Store store.Store
	// Clock stamps creation and use times and ages the cache (default
	// clock.Real).
	Clock clock.Clock
	// CacheFor is how long what authentication read stays valid (default
	// 1 s).
	CacheFor time.Duration
	// OnAdminRotated, when set, is told the admin's new bootstrap token
	// after a rotation, to keep the data dir's copy current.
	OnAdminRotated func(token string) error

	mu     sync.Mutex
	tokens map[string]cachedToken // by hash
	roles  map[roleKey]cachedRole
	used   map[string]time.Time // token id → last use not yet stored
}

type cachedToken struct {
	tok  store.Token
	user store.User
	at   time.Time
}

type roleKey struct{ ws, user string }

type cachedRole struct {
	role authz.Role
	err  error
	at   time.Time
}

var userName = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)

func (s *Service) now() time.Time { return clock.Or(s.Clock).Now() }

func (s *Service) cacheFor() time.Duration {
	if s.CacheFor > 0 {
		return s.CacheFor
	}
	return time.Second
}

// Add creates a user with a role in ws and returns them with their first
// token, shown once.
func (s *Service) Add(ctx context.Context, ws string, in api.UserCreate) (api.User, error) {
	if !userName.MatchString(in.Name) {
		return api.User{}, api.Invalid("name", "user name %q must be 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter", in.Name)
	}
	role := authz.Contributor
	if in.Role != "" {
		var err error
		if role, err = authz.ParseRole(in.Role); err != nil {
			return api.User{}, err
		}
	}
	now := s.now()
	tok, first := newToken(in.Name, "default", now, time.Time{})
	u := store.User{Name: in.Name, CreatedAt: now}
	if err := s.Store.CreateUser(ctx, u, first); err != nil {
		return api.User{}, err
	}
	if err := s.Store.SetRole(ctx, ws, in.Name, string(role)); err != nil {
		// No half-made user: without a role the token would be useless.
		return api.User{}, errors.Join(err, s.Store.DeleteUser(context.WithoutCancel(ctx), in.Name))
	}
	return api.User{Name: u.Name, Role: string(role), CreatedAt: u.CreatedAt, Token: tok}, nil
}

// List lists the users with a role in ws (admins are Owners), without
// their tokens.
func (s *Service) List(ctx context.Context, ws string) ([]api.User, error) {
	us, err := s.Store.Users(ctx)
	if err != nil {
		return nil, err
	}
	roles, err := s.Store.Roles(ctx, ws)
	if err != nil {
		return nil, err
	}
	out := make([]api.User, 0, len(us))
	for _, u := range us {
		role := roles[u.Name]
		if u.Admin {
			role = string(authz.Owner)
		}
		if role != "" {
			out = append(out, api.User{Name: u.Name, Role: role, Admin: u.Admin, CreatedAt: u.CreatedAt})
		}
	}
	return out, nil
}

// SetRole changes a user's role in ws.
func (s *Service) SetRole(ctx context.Context, ws, name string, in api.UserUpdate) (api.User, error) {
	role, err := authz.ParseRole(in.Role)
	if err != nil {
		return api.User{}, err
	}
	u, err := s.Store.UserByName(ctx, name)
	if err != nil {
		return api.User{}, err
	}
	if u.Admin {
		return api.User{}, api.Invalid("name", "%s is the server's admin and Owner of every workspace; their role cannot change", name)
	}
	if err := s.Store.SetRole(ctx, ws, name, string(role)); err != nil {
		return api.User{}, err
	}
	s.forget(name)
	return api.User{Name: u.Name, Role: string(role), CreatedAt: u.CreatedAt}, nil
}

// Remove deletes a user with their tokens and roles; their tokens stop
// working at once on this server.
func (s *Service) Remove(ctx context.Context, ws string, by authz.Principal, name string) error {
	u, err := s.Store.UserByName(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case u.Admin:
		return api.Invalid("name", "%s is the server's admin and cannot be removed", name)
	case name == by.User:
		return api.Invalid("name", "you cannot remove yourself; ask another Owner")
	}
	if err := s.Store.DeleteUser(ctx, name); err != nil {
		return err
	}
	s.forget(name)
	return nil
}

// forget drops what the cache holds for a user.
func (s *Service) forget(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, c := range s.tokens {
		if c.tok.User == user {
			delete(s.tokens, h)
		}
	}
	for k := range s.roles {
		if k.user == user {
			delete(s.roles, k)
		}
	}
}

// newToken makes a token and its stored form.
func newToken(user, name string, now, expires time.Time) (string, store.Token) {
	tok := token.New()
	return tok, store.Token{ID: token.NewID(), User: user, Name: name, Hash: token.Hash(tok), CreatedAt: now, ExpiresAt: expires}
}
