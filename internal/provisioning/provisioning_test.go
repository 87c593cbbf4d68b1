package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
)

func openStore(t *testing.T) store.Store {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.EnsureWorkspace(t.Context(), "default"); err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, s store.Store, name, provider string, state api.ProvisioningState) {
	props, _ := json.Marshal(compute.ClusterProperties{VMSize: "STANDARD_D2_V2", Provider: provider})
	now := time.Now().UTC()
	if err := s.CreateCompute(t.Context(), store.Compute{Workspace: "default", Name: name, Type: "cluster", State: state,
		CreatedBy: "admin", CreatedAt: now, UpdatedAt: now, Properties: props, Status: []byte("{}"), Version: 1}); err != nil {
		t.Fatal(err)
	}
}

func waitState(t *testing.T, s store.Store, name string, want api.ProvisioningState) store.Compute {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := s.GetCompute(t.Context(), "default", name)
		if want == "" && errors.Is(err, api.ErrNotFound) {
			return c
		}
		if err == nil && c.State == want {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: state %s (err %v), want %q", name, c.State, err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// After a restart the controller finishes every transition left halfway,
// reading only the store.
func TestRunPicksUpUnfinishedTransitions(t *testing.T) {
	s := openStore(t)
	put(t, s, "creating-ok", "local", api.StateCreating)
	put(t, s, "creating-bad", "ssh", api.StateCreating)
	put(t, s, "updating", "local", api.StateUpdating)
	put(t, s, "deleting", "local", api.StateDeleting)
	put(t, s, "steady", "local", api.StateSucceeded)

	c := New(s, compute.ProvisionEnv{ProviderAvailable: func(p string) bool { return p == "local" }},
		slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()

	waitState(t, s, "creating-ok", api.StateSucceeded)
	bad := waitState(t, s, "creating-bad", api.StateFailed)
	if len(bad.Errors) != 1 || bad.Errors[0].Code != "ProviderNotAvailable" {
		t.Errorf("errors = %+v", bad.Errors)
	}
	waitState(t, s, "updating", api.StateSucceeded)
	waitState(t, s, "deleting", "")
	if st := waitState(t, s, "steady", api.StateSucceeded); st.Version != 1 {
		t.Errorf("a settled target was rewritten (version %d)", st.Version)
	}

	// A delete that arrives while the target is still Creating wins.
	put(t, s, "late", "local", api.StateCreating)
	rec, _ := s.GetCompute(t.Context(), "default", "late")
	rec.State = api.StateDeleting
	if err := s.UpdateCompute(t.Context(), &rec); err != nil {
		t.Fatal(err)
	}
	c.Enqueue(store.Key("default", "late"))
	waitState(t, s, "late", "")

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
