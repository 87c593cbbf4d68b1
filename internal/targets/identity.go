package targets

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/identities"
	"github.com/paddock-ml/paddock/internal/policy"
	"github.com/paddock-ml/paddock/internal/store"
)

// ids is the identity service (one over the same store when none was
// given: it keeps no state of its own).
func (s *Service) ids() *identities.Service {
	if s.Identities != nil {
		return s.Identities
	}
	return &identities.Service{Store: s.Store, Box: s.Box, Clock: s.Clock}
}

// principal is user acting in workspace ws, with their role there: the
// server's admin is Owner everywhere; a user without a role may do
// nothing (the router has refused them before a service runs).
func (s *Service) principal(ctx context.Context, ws, user string) (authz.Principal, error) {
	u, err := s.Store.UserByName(ctx, user)
	switch {
	case err == nil && u.Admin:
		return authz.Principal{User: user, Role: authz.Owner}, nil
	case err != nil && !errors.Is(err, api.ErrNotFound):
		return authz.Principal{}, err
	}
	role, err := s.Store.RoleOf(ctx, ws, user)
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return authz.Principal{}, err
	}
	return authz.Principal{User: user, Role: authz.Role(role)}, nil
}

// checkIdentities checks the user-assigned identities a create or update
// gives a target (those old did not have): who asks must be allowed to
// hand out their secrets.
func (s *Service) checkIdentities(ctx context.Context, ws string, p authz.Principal, old, next store.Compute) error {
	typ, names := compute.IdentityOf(next)
	if typ != api.IdentityUserAssigned {
		return nil
	}
	_, had := compute.IdentityOf(old)
	var added []string
	for _, n := range names {
		if !slices.ContainsFunc(had, func(h string) bool { return strings.EqualFold(h, n) }) {
			added = append(added, n)
		}
	}
	if len(added) == 0 {
		return nil
	}
	if p.Role == "" { // a create, which names the user only
		var err error
		if p, err = s.principal(ctx, ws, p.User); err != nil {
			return err
		}
	}
	return s.ids().MayAssign(ctx, ws, p, added)
}

// systemIdentity makes a cluster's system-assigned identity when a create
// or update gives it one; undo removes it again when the change is not
// stored after all.
func (s *Service) systemIdentity(ctx context.Context, ws, user string, old, next store.Compute) (undo func(), err error) {
	newType, _ := compute.IdentityOf(next)
	oldType, _ := compute.IdentityOf(old)
	if newType != api.IdentitySystemAssigned || oldType == api.IdentitySystemAssigned {
		return func() {}, nil
	}
	if old.Name == "" {
		// A create: the name must be free before an identity is made
		// under it, or the existing cluster's would be replaced.
		if _, err := s.Store.GetCompute(ctx, ws, next.Name); err == nil {
			return nil, api.Conflict("a compute target named %q already exists in workspace %q (names are compared case-insensitively)", next.Name, ws)
		} else if !errors.Is(err, api.ErrNotFound) {
			return nil, err
		}
	}
	return s.ids().EnsureSystem(ctx, ws, next.Name, user)
}

// policyOf reads a workspace's policy.
func (s *Service) policyOf(ctx context.Context, ws string) (policy.Policy, error) {
	p, err := s.Store.Policy(ctx, ws)
	if err != nil {
		return policy.Policy{}, err
	}
	return policy.Policy{MaxIdle: time.Duration(p.MaxIdleSeconds) * time.Second, MaxRunDurationSeconds: p.MaxRunDurationSeconds}, nil
}

// checkPolicy refuses a create or update whose idle time before shutdown
// is longer than the workspace's policy allows. An update that leaves the
// idle time as it was (old) is not checked: an instance made before the
// policy is capped by it, not refused every change.
func (s *Service) checkPolicy(ctx context.Context, ws, user, name string, kind compute.Kind, props, old []byte) error {
	idle, ok := compute.IdleTimeOf(kind, props)
	if !ok {
		return nil
	}
	if old != nil {
		if was, _ := compute.IdleTimeOf(kind, old); was == idle {
			return nil
		}
	}
	pol, err := s.policyOf(ctx, ws)
	if err != nil {
		return err
	}
	if err := pol.CheckIdle(idle); err != nil {
		s.Policy.Fire(ctx, policy.Event{Workspace: ws, Policy: policy.NameMaxIdle, Action: "refused", Compute: name,
			User: user, Limit: pol.MaxIdle.String(), Message: err.Error()})
		return err
	}
	return nil
}

// view is a target as users see it: its record, its identity with
// principal ids, and the limits that hold for it under the policy.
func (s *Service) view(ctx context.Context, rec store.Compute) api.Compute {
	pol, err := s.policyOf(ctx, rec.Workspace)
	return s.viewWith(ctx, rec, pol, err == nil)
}

// viewWith is view with the workspace's policy read once for many targets
// (withPolicy false: it could not be read, and limits are left out).
func (s *Service) viewWith(ctx context.Context, rec store.Compute, pol policy.Policy, withPolicy bool) api.Compute {
	out := ToAPI(rec)
	if id, err := s.ids().OfTarget(ctx, rec); err == nil {
		out.Identity = id
	}
	if !withPolicy {
		return out
	}
	var lim api.ComputeLimits
	if idle, ok := compute.IdleTimeOf(kindOrNil(rec.Type), rec.Properties); ok {
		d, fromPolicy := pol.EffectiveIdle(idle)
		if d > 0 {
			lim.IdleTimeBeforeShutdown = d.String()
		}
		lim.IdleTimeFromPolicy = fromPolicy
	}
	if _, runnable, _ := compute.RunRulesOf(rec, s.Sizes); runnable {
		lim.MaxRunDurationSeconds = pol.MaxRunDurationSeconds
	}
	if lim != (api.ComputeLimits{}) {
		out.Limits = &lim
	}
	return out
}

func kindOrNil(typ string) compute.Kind {
	k, _ := compute.Lookup(typ)
	return k
}

// Workspace returns a workspace and its policy.
func (s *Service) Workspace(ctx context.Context, ws string) (api.Workspace, error) {
	if err := s.CheckWorkspace(ctx, ws); err != nil {
		return api.Workspace{}, err
	}
	pol, err := s.policyOf(ctx, ws)
	if err != nil {
		return api.Workspace{}, err
	}
	return api.Workspace{Name: ws, Policy: pol.API()}, nil
}

// SetPolicy changes a workspace's policy (Owners: authz.WriteWorkspace).
// Instances are looked at again at once, so a new idle limit takes effect
// now; runs get the new run limit when they are submitted.
func (s *Service) SetPolicy(ctx context.Context, ws string, p authz.Principal, in api.PolicyUpdate) (api.Workspace, error) {
	if err := p.Allow(authz.WriteWorkspace); err != nil {
		return api.Workspace{}, err
	}
	if err := s.CheckWorkspace(ctx, ws); err != nil {
		return api.Workspace{}, err
	}
	cur, err := s.policyOf(ctx, ws)
	if err != nil {
		return api.Workspace{}, err
	}
	next, err := cur.Update(in)
	if err != nil {
		return api.Workspace{}, err
	}
	if err := s.Store.PutPolicy(ctx, store.Policy{Workspace: ws, MaxIdleSeconds: int64(next.MaxIdle / time.Second),
		MaxRunDurationSeconds: next.MaxRunDurationSeconds, UpdatedBy: p.User, UpdatedAt: s.now()}); err != nil {
		return api.Workspace{}, err
	}
	recs, err := s.Store.ListComputes(ctx, ws)
	if err != nil {
		return api.Workspace{}, err
	}
	for _, r := range recs {
		if _, ok := compute.IdleTimeOf(kindOrNil(r.Type), r.Properties); ok {
			s.changed(store.Key(ws, r.Name))
		}
	}
	return api.Workspace{Name: ws, Policy: next.API()}, nil
}
