// Package store is Paddock's durable state behind one interface, so that
// handlers and loops never know which database holds it. The embedded
// implementation is SQLite (store/sqlite); PostgreSQL can be added beside it.
//
// Every method is safe for concurrent use. Writes are durable when they
// return. Records are returned by value; callers change a copy and write it
// back with UpdateCompute, which refuses a stale copy (optimistic
// concurrency on Version) so two writers never silently overwrite each other.
package store

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// Store is the durable state of one Paddock server.
type Store interface {
	// EnsureWorkspace creates the workspace if it does not exist.
	EnsureWorkspace(ctx context.Context, name string) error
	// WorkspaceExists reports whether the workspace exists.
	WorkspaceExists(ctx context.Context, name string) (bool, error)

	// CreateUser stores a user with their first token, together; a
	// duplicate name is api.ErrConflict.
	CreateUser(ctx context.Context, u User, first Token) error
	// PutUser creates or replaces a user (used to bootstrap the admin).
	PutUser(ctx context.Context, u User) error
	// DeleteUser removes a user with their tokens and roles, or returns
	// api.ErrNotFound.
	DeleteUser(ctx context.Context, name string) error
	// UserByName finds a user by name, or api.ErrNotFound.
	UserByName(ctx context.Context, name string) (User, error)
	// Users lists every user, by name.
	Users(ctx context.Context) ([]User, error)

	// CreateToken stores a token; a live token of the same user and name
	// is api.ErrConflict.
	CreateToken(ctx context.Context, t Token) error
	// RotateToken revokes old and stores next in one transaction.
	RotateToken(ctx context.Context, old string, at time.Time, next Token) error
	// TokenByHash finds a token (revoked and expired ones too) by the hash
	// of its secret, or api.ErrNotFound.
	TokenByHash(ctx context.Context, hash string) (Token, error)
	// Tokens lists a user's tokens (every user's for ""), newest first.
	Tokens(ctx context.Context, user string) ([]Token, error)
	// RevokeToken marks a live token revoked at at, or returns
	// api.ErrNotFound.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// TouchTokens records when tokens were last used.
	TouchTokens(ctx context.Context, used map[string]time.Time) error

	// SetRole gives a user a role in a workspace, replacing any other.
	SetRole(ctx context.Context, workspace, user, role string) error
	// RoleOf is a user's role in a workspace, or api.ErrNotFound.
	RoleOf(ctx context.Context, workspace, user string) (string, error)
	// Roles maps the users with a role in a workspace to it.
	Roles(ctx context.Context, workspace string) (map[string]string, error)
	// DeleteRole takes a user's role in a workspace away, or returns
	// api.ErrNotFound.
	DeleteRole(ctx context.Context, workspace, user string) error

	// CreateCompute stores a new target; a name that exists in the
	// workspace, compared case-insensitively, is api.ErrConflict.
	CreateCompute(ctx context.Context, c Compute) error
	// GetCompute finds a target by name, case-insensitively, or api.ErrNotFound.
	GetCompute(ctx context.Context, workspace, name string) (Compute, error)
	// ListComputes returns a workspace's targets sorted by name.
	ListComputes(ctx context.Context, workspace string) ([]Compute, error)
	// ListComputesInStates returns the targets of every workspace that are in
	// one of the states; the reconcilers use it after a restart.
	ListComputesInStates(ctx context.Context, states ...api.ProvisioningState) ([]Compute, error)
	// UpdateCompute writes c if the stored Version equals c.Version and
	// increments it (also in c); otherwise it returns api.ErrConflict.
	UpdateCompute(ctx context.Context, c *Compute) error
	// DeleteCompute removes a target if its stored Version equals version.
	DeleteCompute(ctx context.Context, workspace, name string, version int64) error

	RunStore
	EnvironmentStore
	IdentityStore

	// Quotas returns a workspace's core quotas (the workspace-wide one has
	// family "").
	Quotas(ctx context.Context, workspace string) ([]Quota, error)
	// PutQuota creates or replaces a quota.
	PutQuota(ctx context.Context, q Quota) error

	// AppendAudit appends entries to the audit log in one transaction,
	// numbering them after the last and calling seal on each in order with
	// the hash of the entry before it (PrevHash is set), to set its Hash.
	AppendAudit(ctx context.Context, entries []AuditEntry, seal func(*AuditEntry)) error
	// AuditEntries returns entries matching f, oldest first.
	AuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// PruneAudit removes the entries older than before and returns how
	// many went.
	PruneAudit(ctx context.Context, before time.Time) (int, error)

	// Close releases the database.
	Close() error
}

// User is someone who can call the API. An admin is Owner of every
// workspace; other users have a role per workspace (SetRole).
type User struct {
	Name      string
	Admin     bool
	CreatedAt time.Time
}

// Token is a user's bearer token as stored: its hash, never the token.
type Token struct {
	ID   string
	User string
	// Name tells a user's tokens apart ("laptop", "ci"); unique among
	// the user's live tokens.
	Name       string
	Hash       string // hex SHA-256 of the token
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	LastUsedAt time.Time // zero: never used
	RevokedAt  time.Time // zero: live
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Seq       int64
	At        time.Time
	Workspace string // "" for calls not about a workspace (tokens)
	User      string // "" when the caller is unknown (a bad token)
	TokenID   string
	Action    string // e.g. compute.create, run.cancel, auth.denied
	Target    string // what it was done to, e.g. computes/gpu, runs/run-…
	Source    string // the caller's address
	Outcome   string // ok, denied or failed
	Status    int    // the HTTP status answered
	Message   string // why it was denied or failed
	PrevHash  string
	Hash      string
}

// AuditFilter selects audit entries; zero fields do not filter.
type AuditFilter struct {
	Workspace string // entries of this workspace and those of none
	Since     time.Time
	User      string
	Action    string // exact, or a prefix ending in "." (compute.)
	AfterSeq  int64
	Limit     int
}

// Key names a compute target across workspaces, as the reconcile loops
// and the dispatcher's queues know it: "workspace/name", the name in
// lower case (names are unique case-insensitively).
func Key(workspace, name string) string { return workspace + "/" + strings.ToLower(name) }

// SplitKey undoes Key.
func SplitKey(key string) (workspace, name string) {
	workspace, name, _ = strings.Cut(key, "/")
	return workspace, name
}

// Compute is a compute target as stored.
type Compute struct {
	Workspace  string
	Name       string
	Type       string
	State      api.ProvisioningState
	Errors     []api.ProvisioningError
	CreatedBy  string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Properties json.RawMessage // type-specific, validated, without secrets
	Secrets    []byte          // sealed by secret.Box; nil when there are none
	SecretsSet []string        // names of the secret fields that hold a value
	Status     json.RawMessage // type-specific live status
	Version    int64           // bumped on every write
}

// Unlimited is the quota value that sets no limit.
const Unlimited = -1

// Quota caps the cores a workspace's cluster nodes may hold, for the whole
// workspace (Family "") or one size family.
type Quota struct {
	Workspace        string
	Family           string
	DedicatedCores   int
	LowPriorityCores int
}
