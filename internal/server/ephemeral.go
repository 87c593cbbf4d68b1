package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/workspace"
)

// ephemeralTag marks a cluster made for one run (run submit --compute-spec);
// it is deleted when it has no run left.
const ephemeralTag = "paddock.ephemeral"

// ephemeralCluster creates a cluster for one run from spec and waits until
// it can take runs; it returns the cluster's name.
func ephemeralCluster(ctx context.Context, ws *workspace.Service, st store.Store, wsName, user string, spec api.ComputeSpec) (string, error) {
	b := make([]byte, 8)
	rand.Read(b)
	name := []byte("run-")
	for _, c := range b {
		name = append(name, 'a'+c%26)
	}
	props, _ := json.Marshal(map[string]any{
		"vm_size": spec.VMSize, "max_nodes": spec.MaxNodes, "min_nodes": spec.MinNodes, "vm_priority": spec.VMPriority,
		"idle_seconds_before_scaledown": 0, "description": "made for one run; deleted when it ends",
		"tags": map[string]string{ephemeralTag: "true"},
	})
	if _, err := ws.CreateCompute(ctx, wsName, user, api.ComputeCreate{Name: string(name), Type: "cluster", Properties: props}); err != nil {
		var e *api.Error
		if errors.As(err, &e) && e.Code == api.CodeInvalid {
			e.Message = "compute_spec: " + e.Message
			e.Field = "compute_spec." + e.Field
		}
		return "", err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, err := st.GetCompute(ctx, wsName, string(name))
		if err != nil {
			return "", err
		}
		switch rec.State {
		case api.StateSucceeded:
			return rec.Name, nil
		case api.StateFailed:
			ws.DeleteCompute(context.WithoutCancel(ctx), wsName, rec.Name, true)
			return "", api.Unavailable("the cluster for this run could not be made: %v", rec.Errors)
		}
		if time.Now().After(deadline) {
			return "", api.Unavailable("the cluster for this run was not ready in 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// deleteIfEphemeral deletes a run's cluster made for it once no run of it
// is left.
func deleteIfEphemeral(ws *workspace.Service, st store.Store, log *slog.Logger, wsName, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec, err := st.GetCompute(ctx, wsName, name)
	if err != nil || rec.Type != "cluster" || rec.State == api.StateDeleting {
		return
	}
	var p compute.ClusterProperties
	if json.Unmarshal(rec.Properties, &p) != nil || p.Tags[ephemeralTag] != "true" {
		return
	}
	if active, err := ws.ActiveRuns(ctx, wsName, name); err != nil || len(active) > 0 {
		return
	}
	if _, err := ws.DeleteCompute(ctx, wsName, name, false); err != nil && !errors.Is(err, api.ErrNotFound) {
		log.Warn("deleting a run's cluster", "compute", name, "err", err)
	}
}

// sweepEphemeral deletes the clusters made for one run that no run uses
// any more (their run ended while the server was down).
func sweepEphemeral(ctx context.Context, ws *workspace.Service, st store.Store, log *slog.Logger) {
	recs, err := st.ListComputesInStates(ctx, api.StateSucceeded)
	if err != nil {
		return
	}
	for _, r := range recs {
		if r.Type == "cluster" {
			deleteIfEphemeral(ws, st, log, r.Workspace, r.Name)
		}
	}
}
