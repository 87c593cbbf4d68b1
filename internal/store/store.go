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

	// CreateUser stores a user; a duplicate name is api.ErrConflict.
	CreateUser(ctx context.Context, u User) error
	// PutUser creates or replaces a user (used to bootstrap the admin).
	PutUser(ctx context.Context, u User) error
	// UserByTokenHash finds the user a token belongs to, or api.ErrNotFound.
	UserByTokenHash(ctx context.Context, hash string) (User, error)
	// UserByName finds a user by name, or api.ErrNotFound.
	UserByName(ctx context.Context, name string) (User, error)
	// Users lists every user, by name.
	Users(ctx context.Context) ([]User, error)

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
	IdentityStore

	// Quotas returns a workspace's core quotas (the workspace-wide one has
	// family "").
	Quotas(ctx context.Context, workspace string) ([]Quota, error)
	// PutQuota creates or replaces a quota.
	PutQuota(ctx context.Context, q Quota) error

	// Close releases the database.
	Close() error
}

// User is someone who can call the API.
type User struct {
	Name      string
	Admin     bool
	TokenHash string // hex SHA-256 of the bearer token; the token itself is never stored
	CreatedAt time.Time
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
