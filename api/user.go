package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// UserCreate is the body of POST .../users: a new user and their role in
// the workspace (default Contributor).
type UserCreate struct {
	Name string `json:"name"`
	Role string `json:"role,omitempty"`
}

// UserUpdate is the body of PATCH .../users/{name}.
type UserUpdate struct {
	Role string `json:"role"`
}

// User is a user as the API returns it. Admin users are Owner of every
// workspace. Token is set only in the answer to the request that created
// the user: it is shown once and never again.
type User struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
	Token     string    `json:"token,omitempty"`
}

// UserList is the body of GET .../users.
type UserList struct {
	Items []User `json:"items"`
}

// TokenCreate is the body of POST /api/v1/tokens: a new token for the
// caller.
type TokenCreate struct {
	Name string `json:"name"`
	// ExpiresInSeconds, when set, makes the token expire that long after
	// it is made.
	ExpiresInSeconds int64 `json:"expires_in_seconds,omitempty"`
}

// Token is a bearer token as the API shows it. Token (the secret) is set
// only in the answer that made it.
type Token struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	User       string     `json:"user"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	Token      string     `json:"token,omitempty"`
}

// TokenList is the body of GET /api/v1/tokens.
type TokenList struct {
	Items []Token `json:"items"`
}

// CreateUser adds a user to the workspace (Owners); the answer holds the
// new user's first token, shown this once.
func (c *Client) CreateUser(ctx context.Context, in UserCreate) (*User, error) {
	return call[User](ctx, c, http.MethodPost, c.wsPath("users"), in)
}

// ListUsers lists the workspace's users and their roles (Owners).
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	var l UserList
	err := c.Do(ctx, http.MethodGet, c.wsPath("users"), nil, &l)
	return l.Items, err
}

// SetUserRole changes a user's role in the workspace (Owners).
func (c *Client) SetUserRole(ctx context.Context, name, role string) (*User, error) {
	return call[User](ctx, c, http.MethodPatch, c.wsPath("users", name), UserUpdate{Role: role})
}

// RemoveUser removes a user; their tokens stop working (Owners).
func (c *Client) RemoveUser(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, c.wsPath("users", name), nil, nil)
}

// CreateToken makes a token for the caller; the answer holds it, shown
// this once.
func (c *Client) CreateToken(ctx context.Context, in TokenCreate) (*Token, error) {
	return call[Token](ctx, c, http.MethodPost, "/api/v1/tokens", in)
}

// ListTokens lists the caller's tokens (every user's with all, admins).
func (c *Client) ListTokens(ctx context.Context, all bool) ([]Token, error) {
	path := "/api/v1/tokens"
	if all {
		path += "?all=true"
	}
	var l TokenList
	err := c.Do(ctx, http.MethodGet, path, nil, &l)
	return l.Items, err
}

// RevokeToken revokes a token by id or name (the caller's; any, admins).
func (c *Client) RevokeToken(ctx context.Context, idOrName string) (*Token, error) {
	return call[Token](ctx, c, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(idOrName), nil)
}

// RotateToken replaces the token this client uses with a new one of the
// same name, revoking it; the answer holds the new token.
func (c *Client) RotateToken(ctx context.Context) (*Token, error) {
	return call[Token](ctx, c, http.MethodPost, "/api/v1/tokens/current:rotate", nil)
}
