package store

import (
	"context"
	"encoding/json"

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

// EnvironmentData is what of an environment version both stores keep in
// their data column, as JSON.
type EnvironmentData struct {
	Environment api.Environment   `json:"environment"`
	Env         map[string]string `json:"env,omitempty"`
	Description string            `json:"description,omitempty"`
}

// Data is e's data column: what two versions compare by.
func (e Environment) Data() ([]byte, error) {
	return json.Marshal(EnvironmentData{Environment: e.Environment, Env: e.Env, Description: e.Description})
}

// SetData fills e from a data column.
func (e *Environment) SetData(data []byte) error {
	var d EnvironmentData
	if err := json.Unmarshal(data, &d); err != nil {
		return err
	}
	e.Environment, e.Env, e.Description = d.Environment, d.Env, d.Description
	return nil
}
