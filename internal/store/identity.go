package store

import (
	"context"
	"time"
)

// IdentityStore keeps a workspace's managed identities and its policy.
type IdentityStore interface {
	// CreateIdentity stores a new identity; one of the same workspace,
	// type and name (compared case-insensitively) is api.ErrConflict.
	CreateIdentity(ctx context.Context, id Identity) error
	// GetIdentity finds an identity by type and name, case-insensitively,
	// or api.ErrNotFound.
	GetIdentity(ctx context.Context, workspace, typ, name string) (Identity, error)
	// ListIdentities returns a workspace's identities, the UserAssigned
	// ones first, each kind sorted by name.
	ListIdentities(ctx context.Context, workspace string) ([]Identity, error)
	// UpdateIdentity writes id if the stored Version equals id.Version and
	// increments it (also in id); otherwise it returns api.ErrConflict,
	// or api.ErrNotFound when it is gone.
	UpdateIdentity(ctx context.Context, id *Identity) error
	// DeleteIdentity removes an identity; a missing one is not an error.
	DeleteIdentity(ctx context.Context, workspace, typ, name string) error

	// Policy returns a workspace's policy (the zero value when none was set).
	Policy(ctx context.Context, workspace string) (Policy, error)
	// PutPolicy creates or replaces a workspace's policy.
	PutPolicy(ctx context.Context, p Policy) error
}

// Identity is a managed identity as stored. A SystemAssigned identity is
// named after the cluster it belongs to (Target); a UserAssigned one by
// the user who made it.
type Identity struct {
	Workspace   string
	Name        string
	Type        string // api.IdentityUserAssigned or api.IdentitySystemAssigned
	PrincipalID string
	Target      string // the cluster of a SystemAssigned identity
	Description string
	CreatedBy   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Secrets     []byte   // sealed by secret.Box; nil when there are none
	SecretKeys  []string // the names of the secrets, sorted
	Version     int64    // bumped on every write
}

// Policy is a workspace's admin policy as stored (see internal/policy);
// zero fields set no limit.
type Policy struct {
	Workspace             string
	MaxIdleSeconds        int64
	MaxRunDurationSeconds int64
	UpdatedBy             string
	UpdatedAt             time.Time
}
