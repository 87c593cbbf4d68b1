// Package users adds and lists the people who use a workspace server, each
// with a bearer token that is shown once and stored only as a hash.
package users

import (
	"context"
	"regexp"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/token"
)

// Service adds and lists users.
type Service struct {
	Store store.Store
	// Clock stamps creation times (default clock.Real).
	Clock clock.Clock
}

var userName = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)

// Add creates a user and returns them with their token, shown once
// (admins only: by is who asks).
func (s *Service) Add(ctx context.Context, by *store.User, in api.UserCreate) (api.User, error) {
	if by == nil || !by.Admin {
		return api.User{}, api.Forbidden("only admins can add users")
	}
	if !userName.MatchString(in.Name) {
		return api.User{}, api.Invalid("name", "user name %q must be 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter", in.Name)
	}
	tok := token.New()
	u := store.User{Name: in.Name, Admin: in.Admin, TokenHash: token.Hash(tok), CreatedAt: clock.Or(s.Clock).Now()}
	if err := s.Store.CreateUser(ctx, u); err != nil {
		return api.User{}, err
	}
	return api.User{Name: u.Name, Admin: u.Admin, CreatedAt: u.CreatedAt, Token: tok}, nil
}

// List lists users, without their tokens (admins only).
func (s *Service) List(ctx context.Context, by *store.User) ([]api.User, error) {
	if by == nil || !by.Admin {
		return nil, api.Forbidden("only admins can list users")
	}
	us, err := s.Store.Users(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.User, 0, len(us))
	for _, u := range us {
		out = append(out, api.User{Name: u.Name, Admin: u.Admin, CreatedAt: u.CreatedAt})
	}
	return out, nil
}
