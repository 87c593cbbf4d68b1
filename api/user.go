package api

import "time"

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
