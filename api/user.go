package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
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

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Seq       int64     `json:"seq"`
	At        time.Time `json:"at"`
	Workspace string    `json:"workspace,omitempty"`
	User      string    `json:"user"`
	TokenID   string    `json:"token_id,omitempty"`
	Action    string    `json:"action"`
	Target    string    `json:"target,omitempty"`
	Source    string    `json:"source"`
	Outcome   string    `json:"outcome"` // ok, denied or failed
	Status    int       `json:"status"`
	Message   string    `json:"message,omitempty"`
	Hash      string    `json:"hash"`
}

// AuditList is the body of GET .../audit.
type AuditList struct {
	Items []AuditEntry `json:"items"`
}

// AuditVerify is the body of GET .../audit/verify.
type AuditVerify struct {
	Entries  int    `json:"entries"`
	OK       bool   `json:"ok"`
	FirstSeq int64  `json:"first_seq,omitempty"`
	LastSeq  int64  `json:"last_seq,omitempty"`
	BadSeq   int64  `json:"bad_seq,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// AuditQuery selects audit entries; zero fields do not filter.
type AuditQuery struct {
	Since  time.Time
	User   string
	Action string // exact, or a prefix ending in "." (compute.)
	After  int64  // entries after this number
	Limit  int
}

// Audit lists audit entries of the workspace, oldest first (Owners).
func (c *Client) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.User != "" {
		v.Set("user", q.User)
	}
	if q.Action != "" {
		v.Set("action", q.Action)
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatInt(q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var l AuditList
	err := c.Do(ctx, http.MethodGet, c.wsPath("audit")+"?"+v.Encode(), nil, &l)
	return l.Items, err
}

// VerifyAudit checks the audit log's hash chain (Owners).
func (c *Client) VerifyAudit(ctx context.Context) (*AuditVerify, error) {
	return call[AuditVerify](ctx, c, http.MethodGet, c.wsPath("audit", "verify"), nil)
}

// StudioLink is the answer to POST /api/v1/studio/links: a one-time
// sign-in link to the web studio for the caller (`paddock studio`).
type StudioLink struct {
	// Path is the link's path on the server, code included
	// ("/signin?code=pdl_…"); the client puts its server URL before it.
	Path string `json:"path"`
	// Code signs in once, before ExpiresAt; it is in this answer only.
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateStudioLink asks for a one-time sign-in link to the studio.
func (c *Client) CreateStudioLink(ctx context.Context) (*StudioLink, error) {
	return call[StudioLink](ctx, c, http.MethodPost, "/api/v1/studio/links", nil)
}
