package targets

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/store"
)

// mayUse checks that user may submit runs to a target: an instance is
// private to its assigned user (Owners may stop or delete it, not use it).
func mayUse(user string, rec store.Compute) error {
	owner := compute.Owner(rec)
	if owner == "" || owner == user {
		return nil
	}
	return api.Forbidden("compute instance %s belongs to %s; only they can use it", rec.Name, owner)
}

// Visible reports whether p sees a target at all: a private one (a
// compute instance) is seen only by its owners (who created it, its
// assigned user) and by those who may start and stop any target (Owners,
// Compute Operators); every other target by everyone with a role.
func Visible(p authz.Principal, rec store.Compute) bool {
	if compute.Owner(rec) == "" || p.Any(authz.OperateCompute) {
		return true
	}
	for _, o := range owners(rec) {
		if o == p.User {
			return true
		}
	}
	return false
}

// owners are who owns a target for authorization: who created it and, for
// an instance, its assigned user.
func owners(rec store.Compute) []string {
	if o := compute.Owner(rec); o != "" && o != rec.CreatedBy {
		return []string{o, rec.CreatedBy}
	}
	return []string{rec.CreatedBy}
}

// instanceActions maps an action to the states it may start from and the
// state it requests; the instance controller carries the request out.
var instanceActions = map[string]struct {
	from []string
	to   string
}{
	"start":   {[]string{"Stopped", "Stopping", "Failed"}, "Starting"},
	"stop":    {[]string{"Running", "Starting", "Creating", "Restarting"}, "Stopping"},
	"restart": {[]string{"Running", "Starting", "Stopped"}, "Restarting"},
}

// InstanceAction starts, stops or restarts a compute instance. Asking for
// the state it is already in or heading to is not an error.
func (s *Service) InstanceAction(ctx context.Context, ws string, p authz.Principal, name, action string) (api.Compute, error) {
	if err := s.CheckWorkspace(ctx, ws); err != nil {
		return api.Compute{}, err
	}
	act, ok := instanceActions[action]
	if !ok {
		return api.Compute{}, api.NotFound("compute targets support :start, :stop and :restart, not :%s", action)
	}
	return redoStale(func() (api.Compute, bool, error) {
		return s.instanceAction(ctx, ws, p, name, action, act.from, act.to)
	})
}

// instanceAction is one read-modify-write of InstanceAction; stale reports
// that the record changed between the read and the write.
func (s *Service) instanceAction(ctx context.Context, ws string, p authz.Principal, name, action string, from []string, to string) (_ api.Compute, stale bool, _ error) {
	rec, err := s.Store.GetCompute(ctx, ws, name)
	if err != nil {
		return api.Compute{}, false, err
	}
	if !compute.CanStartStop(rec) {
		return api.Compute{}, false, api.Invalid("name", "%s is a %s target; only compute instances can be started and stopped", rec.Name, rec.Type)
	}
	if err := p.Check(authz.OperateCompute, "compute instance "+rec.Name, owners(rec)...); err != nil {
		return api.Compute{}, false, err
	}
	if rec.State != api.StateSucceeded {
		return api.Compute{}, false, api.Conflict("compute instance %s is %s; wait until it is Succeeded", rec.Name, rec.State)
	}
	var st compute.InstanceStatus
	if err := json.Unmarshal(rec.Status, &st); err != nil {
		return api.Compute{}, false, err
	}
	done := map[string][]string{"start": {"Running", "Starting"}, "stop": {"Stopped", "Stopping"}, "restart": {"Restarting"}}
	for _, s := range done[action] {
		if st.State == s {
			return ToAPI(rec), false, nil
		}
	}
	allowed := false
	for _, f := range from {
		allowed = allowed || st.State == f
	}
	if !allowed {
		return api.Compute{}, false, api.Conflict("compute instance %s is %s and cannot %s now", rec.Name, st.State, action)
	}
	st.State = to
	rec.Status, _ = json.Marshal(st)
	rec.UpdatedAt = s.now()
	if err := s.Store.UpdateCompute(ctx, &rec); err != nil {
		return api.Compute{}, errors.Is(err, api.ErrConflict), err
	}
	s.changed(store.Key(ws, rec.Name))
	return ToAPI(rec), false, nil
}
