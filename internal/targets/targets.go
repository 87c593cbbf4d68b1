// Package targets holds the operations a user performs on a workspace's
// compute targets — creating, changing, starting, stopping and deleting
// them, their quotas, and the check that a run fits the target it is
// submitted to — as plain Go methods. HTTP handlers are thin wrappers around it, so the same
// rules hold whichever way a request arrives.
package targets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/identities"
	"github.com/paddock-ml/paddock/internal/notify"
	"github.com/paddock-ml/paddock/internal/policy"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/store"
)

// DefaultName is the workspace every server has.
const DefaultName = "default"

// Service performs workspace operations.
type Service struct {
	Store store.Store
	Box   *secret.Box
	Sizes *compute.Catalog
	// Notifier is told (notify.Targets) the key of every target whose
	// desired state changed, so the controllers reconcile it at once.
	Notifier *notify.Notifier
	// Clock stamps changes (default clock.Real).
	Clock clock.Clock
	// ActiveRuns lists the runs of a target that have not ended; CancelRun
	// cancels one. Deleting a target with active runs needs force.
	ActiveRuns func(ctx context.Context, ws, target string) ([]string, error)
	CancelRun  func(ctx context.Context, ws, id, why string) error
	// Nodes lists the nodes of a target ("" for every target), for quotas.
	Nodes func(ctx context.Context, ws, target string) ([]store.Node, error)
	// Identities are the workspace's managed identities: a cluster's
	// identity_id names them, a SystemAssigned cluster has its own.
	Identities *identities.Service
	// Policy records when the workspace's policy refuses a request (nil:
	// nowhere).
	Policy *policy.Recorder
}

// changed tells the controllers that a target's desired state changed.
func (s *Service) changed(key string) { s.Notifier.Publish(notify.Targets, key) }

// now is the time of a change.
func (s *Service) now() time.Time { return clock.Or(s.Clock).Now() }

// EnsureBuiltins creates a workspace and its built-in targets if missing.
func (s *Service) EnsureBuiltins(ctx context.Context, ws, admin string) error {
	if err := s.Store.EnsureWorkspace(ctx, ws); err != nil {
		return err
	}
	if _, err := s.Store.GetCompute(ctx, ws, compute.LocalName); err == nil || !errors.Is(err, api.ErrNotFound) {
		return err
	}
	local, _ := compute.Lookup("local")
	now := s.now()
	err := s.Store.CreateCompute(ctx, store.Compute{
		Workspace: ws, Name: compute.LocalName, Type: "local", State: api.StateSucceeded,
		CreatedBy: admin, CreatedAt: now, UpdatedAt: now, Properties: []byte("{}"),
		Status: local.InitialStatus(nil), Version: 1,
	})
	if errors.Is(err, api.ErrConflict) {
		return nil
	}
	return err
}

// CheckWorkspace answers NotFound unless the workspace exists.
func (s *Service) CheckWorkspace(ctx context.Context, ws string) error {
	ok, err := s.Store.WorkspaceExists(ctx, ws)
	if err != nil {
		return err
	}
	if !ok {
		return api.NotFound("workspace %q not found", ws)
	}
	return nil
}

func (s *Service) env(ws, user string) compute.Env {
	return compute.Env{
		Sizes: s.Sizes,
		User:  user,
		UserExists: func(ctx context.Context, name string) (bool, error) {
			_, err := s.Store.UserByName(ctx, name)
			if errors.Is(err, api.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
		Target: func(ctx context.Context, name string) (string, error) {
			c, err := s.Store.GetCompute(ctx, ws, name)
			return c.Type, err
		},
		Identity: func(ctx context.Context, name string) (string, error) {
			return s.ids().Lookup(ctx, ws, name)
		},
	}
}

func secretsAD(ws, name string) []byte { return []byte("compute/" + store.Key(ws, name)) }

// PrepareCompute checks a request to create a target: its type, name and
// properties, which it returns normalised, with the secrets split off. It
// stores nothing and reaches no machine (CreateCompute attaches after).
func (s *Service) PrepareCompute(ctx context.Context, ws, user string, in api.ComputeCreate) (compute.Kind, json.RawMessage, map[string]secret.Value, error) {
	if err := s.CheckWorkspace(ctx, ws); err != nil {
		return nil, nil, nil, err
	}
	if in.Type == "" {
		return nil, nil, nil, api.Invalid("type", "type is required: one of %s", strings.Join(compute.Types(compute.Created), ", "))
	}
	kind, ok := compute.Lookup(in.Type)
	switch {
	case !ok:
		return nil, nil, nil, api.Invalid("type", "type %q is not a compute type; create one of %s", in.Type, strings.Join(compute.Types(compute.Created), ", "))
	case kind.Origin() == compute.BuiltIn:
		return nil, nil, nil, api.Invalid("type", "the %s target is built in and cannot be created", in.Type)
	}
	if err := compute.ValidateName(in.Name); err != nil {
		return nil, nil, nil, err
	}
	props, secrets, err := compute.SplitSecrets(kind, in.Properties)
	if err != nil {
		return nil, nil, nil, err
	}
	props, err = kind.Normalize(ctx, props, secrets, s.env(ws, user))
	if err != nil {
		return nil, nil, nil, err
	}
	return kind, props, secrets, nil
}

// CreateCompute validates and stores a new target in state Creating and
// hands it to the provisioning controller.
func (s *Service) CreateCompute(ctx context.Context, ws, user string, in api.ComputeCreate) (api.Compute, error) {
	kind, props, secrets, err := s.PrepareCompute(ctx, ws, user, in)
	if err != nil {
		return api.Compute{}, err
	}
	if err := s.checkQuota(ctx, ws, in.Name, kind.Type(), props); err != nil {
		return api.Compute{}, err
	}
	if err := s.checkPolicy(ctx, ws, user, in.Name, kind, props, nil); err != nil {
		return api.Compute{}, err
	}
	newRec := store.Compute{Workspace: ws, Name: in.Name, Type: kind.Type(), Properties: props}
	if err := s.checkIdentities(ctx, ws, authz.Principal{User: user}, store.Compute{}, newRec); err != nil {
		return api.Compute{}, err
	}
	status := kind.InitialStatus(props)
	if att, ok := kind.(compute.Attacher); ok {
		// Check what is attached before storing anything: a failure
		// leaves no target behind.
		if _, err := s.Store.GetCompute(ctx, ws, in.Name); err == nil {
			return api.Compute{}, api.Conflict("a compute target named %q already exists in workspace %q (names are compared case-insensitively)", in.Name, ws)
		}
		if props, status, err = att.Attach(ctx, props, secrets); err != nil {
			return api.Compute{}, err
		}
	}
	sealed, err := s.Box.SealMap(secrets, secretsAD(ws, in.Name))
	if err != nil {
		return api.Compute{}, err
	}
	now := s.now()
	rec := store.Compute{
		Workspace: ws, Name: in.Name, Type: kind.Type(), State: api.StateCreating,
		CreatedBy: user, CreatedAt: now, UpdatedAt: now,
		Properties: props, Secrets: sealed, SecretsSet: secretNames(secrets),
		Status: status, Version: 1,
	}
	undo, err := s.systemIdentity(ctx, ws, user, store.Compute{}, rec)
	if err != nil {
		return api.Compute{}, err
	}
	if err := s.Store.CreateCompute(ctx, rec); err != nil {
		undo()
		return api.Compute{}, err
	}
	s.changed(store.Key(ws, in.Name))
	return s.view(ctx, rec), nil
}

func secretNames(m map[string]secret.Value) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// GetCompute returns one target p may see (see Visible); another user's
// compute instance is not found.
func (s *Service) GetCompute(ctx context.Context, ws string, p authz.Principal, name string) (api.Compute, error) {
	if err := s.CheckWorkspace(ctx, ws); err != nil {
		return api.Compute{}, err
	}
	rec, err := s.VisibleCompute(ctx, ws, p, name)
	if err != nil {
		return api.Compute{}, err
	}
	return s.view(ctx, rec), nil
}

// VisibleCompute reads a target's record if p may see it (see Visible),
// else answers NotFound as for a target that does not exist.
func (s *Service) VisibleCompute(ctx context.Context, ws string, p authz.Principal, name string) (store.Compute, error) {
	rec, err := s.Store.GetCompute(ctx, ws, name)
	if err == nil && !Visible(p, rec) {
		return store.Compute{}, api.NotFound("compute target %q not found in workspace %q", name, ws)
	}
	return rec, err
}

// ListComputes returns the targets of a workspace that p may see (see
// Visible), sorted by name.
func (s *Service) ListComputes(ctx context.Context, ws string, p authz.Principal) ([]api.Compute, error) {
	recs, err := s.visible(ctx, ws, p)
	if err != nil {
		return nil, err
	}
	pol, err := s.policyOf(ctx, ws)
	out := make([]api.Compute, 0, len(recs))
	for _, r := range recs {
		out = append(out, s.viewWith(ctx, r, pol, err == nil))
	}
	return out, nil
}

// ListBrief lists the targets p may see as ListComputes does, without what
// the full view reads for each target (its managed identity, the policy's
// limits on it): what a page listing a thousand targets shows, in one read
// of the store.
func (s *Service) ListBrief(ctx context.Context, ws string, p authz.Principal) ([]api.Compute, error) {
	recs, err := s.visible(ctx, ws, p)
	if err != nil {
		return nil, err
	}
	out := make([]api.Compute, len(recs))
	for i, r := range recs {
		out[i] = ToAPI(r)
	}
	return out, nil
}

// visible reads the targets of a workspace that p may see.
func (s *Service) visible(ctx context.Context, ws string, p authz.Principal) ([]store.Compute, error) {
	if err := s.CheckWorkspace(ctx, ws); err != nil {
		return nil, err
	}
	recs, err := s.Store.ListComputes(ctx, ws)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(recs, func(r store.Compute) bool { return !Visible(p, r) }), nil
}

// UpdateCompute changes the updatable properties of a target; the target
// goes to Updating and the controller applies the change.
func (s *Service) UpdateCompute(ctx context.Context, ws string, p authz.Principal, name string, in api.ComputeUpdate) (api.Compute, error) {
	if err := s.CheckWorkspace(ctx, ws); err != nil {
		return api.Compute{}, err
	}
	return redoStale(func() (api.Compute, bool, error) { return s.updateCompute(ctx, ws, p, name, in) })
}

// redoStale runs a read-modify-write of a target again while it lost the
// race with the target's controller, which writes its status concurrently,
// so the user never sees a conflict they did not cause.
func redoStale(rmw func() (_ api.Compute, stale bool, _ error)) (api.Compute, error) {
	for attempt := 1; ; attempt++ {
		c, stale, err := rmw()
		if !stale || attempt == 5 {
			return c, err
		}
	}
}

// updateCompute is one read-modify-write of UpdateCompute; stale reports
// that the record changed between the read and the write.
func (s *Service) updateCompute(ctx context.Context, ws string, p authz.Principal, name string, in api.ComputeUpdate) (_ api.Compute, stale bool, _ error) {
	rec, err := s.Store.GetCompute(ctx, ws, name)
	if err != nil {
		return api.Compute{}, false, err
	}
	if err := p.Check(authz.WriteCompute, "compute target "+rec.Name, rec.CreatedBy); err != nil {
		return api.Compute{}, false, err
	}
	kind, ok := compute.Lookup(rec.Type)
	if !ok {
		return api.Compute{}, false, fmt.Errorf("stored target %q has unknown type %q", rec.Name, rec.Type)
	}
	if len(kind.UpdatableFields()) == 0 {
		return api.Compute{}, false, api.Invalid("name", "the %s target %q has nothing that can be updated", rec.Type, rec.Name)
	}
	next, err := compute.Next(rec.Name, rec.State, compute.EventUpdate)
	if err != nil {
		return api.Compute{}, false, err
	}
	props, err := compute.Overlay(kind, rec.Properties, in.Properties)
	if err != nil {
		return api.Compute{}, false, err
	}
	secrets, err := s.Box.OpenMap(rec.Secrets, secretsAD(ws, rec.Name))
	if err != nil {
		return api.Compute{}, false, err
	}
	if props, err = kind.Normalize(ctx, props, secrets, s.env(ws, p.User)); err != nil {
		return api.Compute{}, false, err
	}
	if err := s.checkQuota(ctx, ws, rec.Name, kind.Type(), props); err != nil {
		return api.Compute{}, false, err
	}
	if err := s.checkPolicy(ctx, ws, p.User, rec.Name, kind, props, rec.Properties); err != nil {
		return api.Compute{}, false, err
	}
	old := rec
	rec.Properties = props
	if err := s.checkIdentities(ctx, ws, p, old, rec); err != nil {
		return api.Compute{}, false, err
	}
	undo, err := s.systemIdentity(ctx, ws, p.User, old, rec)
	if err != nil {
		return api.Compute{}, false, err
	}
	rec.State, rec.Errors, rec.UpdatedAt = next, nil, s.now()
	if err := s.Store.UpdateCompute(ctx, &rec); err != nil {
		undo()
		return api.Compute{}, errors.Is(err, api.ErrConflict), err
	}
	if oldType, _ := compute.IdentityOf(old); oldType == api.IdentitySystemAssigned {
		if newType, _ := compute.IdentityOf(rec); newType != oldType {
			s.ids().DropSystem(context.WithoutCancel(ctx), ws, rec.Name)
		}
	}
	s.changed(store.Key(ws, rec.Name))
	return s.view(ctx, rec), false, nil
}

// DeleteCompute moves a target to Deleting; the controller releases its
// resources and removes it. Deleting a target already being deleted
// returns it unchanged, so a retried delete succeeds.
func (s *Service) DeleteCompute(ctx context.Context, ws string, p authz.Principal, name string, force bool) (api.Compute, error) {
	if err := s.CheckWorkspace(ctx, ws); err != nil {
		return api.Compute{}, err
	}
	return redoStale(func() (api.Compute, bool, error) { return s.deleteCompute(ctx, ws, p, name, force) })
}

// deleteCompute is one read-modify-write of DeleteCompute; stale reports
// that the record changed between the read and the write (its controller
// writes the status while nodes come and go).
func (s *Service) deleteCompute(ctx context.Context, ws string, p authz.Principal, name string, force bool) (_ api.Compute, stale bool, _ error) {
	rec, err := s.Store.GetCompute(ctx, ws, name)
	if err != nil {
		return api.Compute{}, false, err
	}
	if err := p.Check(authz.DeleteCompute, "compute target "+rec.Name, rec.CreatedBy); err != nil {
		return api.Compute{}, false, err
	}
	if kind, ok := compute.Lookup(rec.Type); ok && kind.Origin() == compute.BuiltIn {
		return api.Compute{}, false, api.Invalid("name", "the %s target is built in and cannot be deleted", rec.Name)
	}
	if rec.State == api.StateDeleting {
		s.changed(store.Key(ws, rec.Name))
		return ToAPI(rec), false, nil
	}
	next, err := compute.Next(rec.Name, rec.State, compute.EventDelete)
	if err != nil {
		return api.Compute{}, false, err
	}
	if s.ActiveRuns != nil {
		active, err := s.ActiveRuns(ctx, ws, rec.Name)
		if err != nil {
			return api.Compute{}, false, err
		}
		if len(active) > 0 && !force {
			return api.Compute{}, false, api.Conflict("compute target %q has %d active runs; cancel them first or delete with --force, which cancels them", rec.Name, len(active))
		}
		for _, id := range active {
			if err := s.CancelRun(ctx, ws, id, "compute target "+rec.Name+" is being deleted"); err != nil {
				return api.Compute{}, false, err
			}
		}
	}
	rec.State, rec.UpdatedAt = next, s.now()
	if err := s.Store.UpdateCompute(ctx, &rec); err != nil {
		return api.Compute{}, errors.Is(err, api.ErrConflict), err
	}
	if typ, _ := compute.IdentityOf(rec); typ == api.IdentitySystemAssigned {
		// The cluster's own identity goes with it; one left behind by a
		// failure here is never listed and is replaced if the name is
		// used again.
		s.ids().DropSystem(context.WithoutCancel(ctx), ws, rec.Name)
	}
	s.changed(store.Key(ws, rec.Name))
	return ToAPI(rec), false, nil
}

// OpenSecrets decrypts a target's write-only secrets, for the code that
// uses them (e.g. SSH credentials); they are never returned to users.
func (s *Service) OpenSecrets(rec store.Compute) (map[string]secret.Value, error) {
	return s.Box.OpenMap(rec.Secrets, secretsAD(rec.Workspace, rec.Name))
}

// ToAPI converts a stored target to its wire form; secrets stay behind.
func ToAPI(c store.Compute) api.Compute {
	errs := c.Errors
	if errs == nil {
		errs = []api.ProvisioningError{}
	}
	return api.Compute{
		Name: c.Name, Type: c.Type, ProvisioningState: c.State, ProvisioningErrors: errs,
		CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Properties: c.Properties, SecretsSet: c.SecretsSet, Status: c.Status,
	}
}
