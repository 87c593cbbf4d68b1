package api

import (
	"context"
	"net/http"
	"time"
)

// UserCreate is the body of POST /api/v1/users.
type UserCreate struct {
	Name  string `json:"name"`
	Admin bool   `json:"admin,omitempty"`
}

// User is a user as the API returns it. Token is set only in the answer to
// the request that created the user: it is shown once and never again.
type User struct {
	Name      string    `json:"name"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
	Token     string    `json:"token,omitempty"`
}

// UserList is the body of GET /api/v1/users.
type UserList struct {
	Items []User `json:"items"`
}

// CreateUser adds a user (admins); the answer holds the new user's token,
// shown this once.
func (c *Client) CreateUser(ctx context.Context, in UserCreate) (*User, error) {
	return call[User](ctx, c, http.MethodPost, "/api/v1/users", in)
}

// ListUsers lists the server's users (admins).
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	var l UserList
	err := c.Do(ctx, http.MethodGet, "/api/v1/users", nil, &l)
	return l.Items, err
}
