// Package environments keeps the environments registered in a workspace
// (Azure ML's Environment.register and Environment.get): what runs run in
// (an interpreter, a requirements file, a conda file or an image) and
// their variables, under a name, every changed registration a new
// version. Runs do not refer to them: a client reads one and submits what
// it holds.
package environments

import (
	"context"
	"regexp"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/targets"
)

// Service registers and reads environments.
type Service struct {
	Store store.Store
	// Computes checks that workspaces exist.
	Computes *targets.Service
	Clock    clock.Clock
}

// name is an environment's name: as an experiment's.
var name = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`)

const maxDescription = 4096

// Register stores an environment as the next version of its name, or
// returns the latest version when it holds the same (created false).
func (s *Service) Register(ctx context.Context, ws, user string, in api.EnvironmentRegister) (api.NamedEnvironment, bool, error) {
	if err := s.Computes.CheckWorkspace(ctx, ws); err != nil {
		return api.NamedEnvironment{}, false, err
	}
	if !name.MatchString(in.Name) {
		return api.NamedEnvironment{}, false, api.Invalid("name", "environment name %q must be 1 to 255 letters, digits, '_', '.' or '-', starting with a letter or digit", in.Name)
	}
	if len(in.Description) > maxDescription || strings.ContainsRune(in.Description, 0) {
		return api.NamedEnvironment{}, false, api.Invalid("description", "description must be at most %d bytes without NUL bytes", maxDescription)
	}
	if err := targets.CheckEnvironment(in.Environment, in.Env); err != nil {
		return api.NamedEnvironment{}, false, err
	}
	e := store.Environment{Workspace: ws, NamedEnvironment: api.NamedEnvironment{Name: in.Name, Environment: in.Environment,
		Env: in.Env, Description: in.Description, CreatedBy: user, CreatedAt: clock.Or(s.Clock).Now()}}
	out, created, err := s.Store.RegisterEnvironment(ctx, e)
	return out.NamedEnvironment, created, err
}

// Get returns a version of an environment (the latest for 0).
func (s *Service) Get(ctx context.Context, ws, name string, version int) (api.NamedEnvironment, error) {
	if err := s.Computes.CheckWorkspace(ctx, ws); err != nil {
		return api.NamedEnvironment{}, err
	}
	if version < 0 {
		return api.NamedEnvironment{}, api.Invalid("version", "version must be a positive number (or left out for the latest)")
	}
	e, err := s.Store.GetEnvironment(ctx, ws, name, version)
	return e.NamedEnvironment, err
}

// List returns the latest version of each of a workspace's environments.
func (s *Service) List(ctx context.Context, ws string) ([]api.NamedEnvironment, error) {
	if err := s.Computes.CheckWorkspace(ctx, ws); err != nil {
		return nil, err
	}
	es, err := s.Store.ListEnvironments(ctx, ws)
	out := make([]api.NamedEnvironment, 0, len(es))
	for _, e := range es {
		out = append(out, e.NamedEnvironment)
	}
	return out, err
}
