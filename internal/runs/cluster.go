package runs

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/compute"
)

// runClusterTag marks a cluster made for one run (run submit
// --compute-spec); it is deleted when it has no run left.
const runClusterTag = "paddock.ephemeral"

// makeRunCluster creates a cluster for one run from spec and waits until
// it can take runs (it is woken by the cluster's provisioning changes);
// it returns the cluster's name.
func (s *Service) makeRunCluster(ctx context.Context, ws, user string, spec api.ComputeSpec) (string, error) {
	b := make([]byte, 8)
	rand.Read(b)
	name := []byte("run-")
	for _, c := range b {
		name = append(name, 'a'+c%26)
	}
	props, _ := json.Marshal(map[string]any{
		"vm_size": spec.VMSize, "max_nodes": spec.MaxNodes, "min_nodes": spec.MinNodes, "vm_priority": spec.VMPriority,
		"idle_seconds_before_scaledown": 0, "description": "made for one run; deleted when it ends",
		"tags": map[string]string{runClusterTag: "true"},
	})
	changed := s.changes(ws, string(name)) // before it exists: no change can be missed
	if _, err := s.Computes.CreateCompute(ctx, ws, user, api.ComputeCreate{Name: string(name), Type: "cluster", Properties: props}); err != nil {
		var e *api.Error
		if errors.As(err, &e) && e.Code == api.CodeInvalid {
			e.Message = "compute_spec: " + e.Message
			e.Field = "compute_spec." + e.Field
		}
		return "", err
	}
	deadline := s.Clock.NewTimer(waitReady)
	defer deadline.Stop()
	for {
		rec, err := s.Store.GetCompute(ctx, ws, string(name))
		if err != nil {
			return "", err
		}
		switch rec.State {
		case api.StateSucceeded:
			return rec.Name, nil
		case api.StateFailed:
			s.Computes.DeleteCompute(context.WithoutCancel(ctx), ws, authz.System, rec.Name, true)
			return "", api.Unavailable("the cluster for this run could not be made: %v", rec.Errors)
		}
		select {
		case <-changed:
			changed = s.changes(ws, string(name))
		case <-deadline.C():
			return "", api.Unavailable("the cluster for this run was not ready in 30 s")
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// deleteIfRunCluster deletes a cluster made for one run once no run of it
// is left.
func (s *Service) deleteIfRunCluster(ws, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), waitReady)
	defer cancel()
	rec, err := s.Store.GetCompute(ctx, ws, name)
	if err != nil || rec.State == api.StateDeleting || compute.Tags(rec)[runClusterTag] != "true" {
		return
	}
	if active, err := s.Dispatch.ActiveRuns(ctx, ws, name); err != nil || len(active) > 0 {
		return
	}
	if _, err := s.Computes.DeleteCompute(ctx, ws, authz.System, name, false); err != nil && !errors.Is(err, api.ErrNotFound) {
		s.Log.Warn("deleting a run's cluster", "compute", name, "err", err)
	}
}

// SweepRunClusters deletes the clusters made for one run that no run uses
// any more (their run ended while the server was down).
func (s *Service) SweepRunClusters(ctx context.Context) {
	recs, err := s.Store.ListComputesInStates(ctx, api.StateSucceeded)
	if err != nil {
		return
	}
	for _, r := range recs {
		if compute.Tags(r)[runClusterTag] == "true" {
			s.deleteIfRunCluster(r.Workspace, r.Name)
		}
	}
}
