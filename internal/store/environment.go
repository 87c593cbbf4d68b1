package store

import (
	"context"

	"github.com/paddock-ml/paddock/api"
)

// EnvironmentStore keeps the environments registered in workspaces, every
// version of each.
type EnvironmentStore interface {
	// RegisterEnvironment stores e as the next version of its name, unless
	// the latest version holds the same environment, variables and
	// description: then it returns that version and false.
	RegisterEnvironment(ctx context.Context, e Environment) (Environment, bool, error)
	// GetEnvironment returns one version of a named environment (the
	// latest for version 0; names compare case-insensitively), or
	// api.ErrNotFound.
	GetEnvironment(ctx context.Context, workspace, name string, version int) (Environment, error)
	// ListEnvironments returns the latest version of each of a
	// workspace's environments, by name.
	ListEnvironments(ctx context.Context, workspace string) ([]Environment, error)
}

// Environment is a version of a named environment as stored.
type Environment struct {
	Workspace string
	api.NamedEnvironment
}
