package targets_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/policy"
	"github.com/paddock-ml/paddock/internal/store"
)

type auditor struct {
	mu     sync.Mutex
	events []policy.Event
}

func (a *auditor) PolicyFired(_ context.Context, ev policy.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
}

func setPolicy(t *testing.T, f *fixture, idle string, dur int64) {
	t.Helper()
	var u api.PolicyUpdate
	u.Policy.MaxIdleTimeBeforeShutdown, u.Policy.MaxRunDurationSeconds = &idle, &dur
	if _, err := f.svc.SetPolicy(f.ctx, "default", ownerP, u); err != nil {
		t.Fatal(err)
	}
}

// Only admins set the policy; everyone reads it.
func TestSetPolicyAdminsOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	idle := "1h"
	var u api.PolicyUpdate
	u.Policy.MaxIdleTimeBeforeShutdown = &idle
	if _, err := f.svc.SetPolicy(f.ctx, "default", bobP, u); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("bob setting the policy: err = %v, want Forbidden", err)
	}
	setPolicy(t, f, "2h", 3600)
	ws, err := f.svc.Workspace(f.ctx, "default")
	if err != nil || ws.Policy.MaxIdleTimeBeforeShutdown != "2h0m0s" || ws.Policy.MaxRunDurationSeconds != 3600 {
		t.Fatalf("Workspace = %+v, %v", ws, err)
	}
}

// An instance asking to idle longer than the policy allows is refused
// (and the refusal recorded); one asking for none, or made before the
// policy with a longer time, is capped, shown in its limits, and may
// still change its other settings.
func TestInstanceIdlePolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := &auditor{}
	f.svc.Policy = &policy.Recorder{Auditor: a}
	f.mustCreate("old-box", "instance", map[string]any{"vm_size": "STANDARD_D2_V2", "idle_time_before_shutdown": "5h"})
	setPolicy(t, f, "2h", 0)

	_, err := f.create("bob", "new-box", "instance", map[string]any{"vm_size": "STANDARD_D2_V2", "idle_time_before_shutdown": "3h"})
	wantCode(t, err, api.CodeInvalid, "idle_time_before_shutdown")
	if len(a.events) != 1 || a.events[0].Policy != policy.NameMaxIdle || a.events[0].Action != "refused" || a.events[0].User != "bob" {
		t.Fatalf("events = %+v, want one refusal of bob's instance", a.events)
	}
	f.mustCreate("capped-box", "instance", map[string]any{"vm_size": "STANDARD_D2_V2"})
	for _, name := range []string{"capped-box", "old-box"} {
		got, err := f.svc.GetCompute(f.ctx, "default", authz.System, name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Limits == nil || got.Limits.IdleTimeBeforeShutdown != "2h0m0s" || !got.Limits.IdleTimeFromPolicy {
			t.Fatalf("%s limits = %+v, want 2h from the policy", name, got.Limits)
		}
	}
	if _, err := f.svc.UpdateCompute(f.ctx, "default", ownerP, "old-box", api.ComputeUpdate{Properties: []byte(`{"max_concurrent_runs":1}`)}); err != nil {
		t.Fatalf("changing another setting of an instance made before the policy: %v", err)
	}
	_, err = f.svc.UpdateCompute(f.ctx, "default", ownerP, "capped-box", api.ComputeUpdate{Properties: []byte(`{"idle_time_before_shutdown":"4h"}`)})
	wantCode(t, err, api.CodeInvalid, "idle_time_before_shutdown")
	// Clusters are not instances: no idle limit is shown for them.
	f.mustCreate("cpu", "cluster", map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 1})
	if got, _ := f.svc.GetCompute(f.ctx, "default", authz.System, "cpu"); got.Limits != nil {
		t.Fatalf("cluster limits = %+v, want none (no run limit set)", got.Limits)
	}
}

// A run asking for more than the policy's maximum is refused naming the
// field; one asking for none gets the maximum, marked as the policy's.
func TestRunDurationPolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := &auditor{}
	f.svc.Policy = &policy.Recorder{Auditor: a}
	setPolicy(t, f, "", 3600)
	submit := func(seconds int64) (store.Run, error) {
		return f.svc.ValidateRun(f.ctx, "default", "bob", api.RunSubmit{Compute: "local", Command: []string{"true"},
			MaxRunDurationSeconds: seconds}, func(string) bool { return true })
	}
	_, err := submit(3601)
	wantCode(t, err, api.CodeInvalid, "max_run_duration_seconds")
	if len(a.events) != 1 || a.events[0].Policy != policy.NameMaxRunDuration || a.events[0].Limit != "3600" {
		t.Fatalf("events = %+v", a.events)
	}
	r, err := submit(0)
	if err != nil || r.MaxRunDurationSeconds != 3600 || !r.MaxRunDurationFromPolicy {
		t.Fatalf("a run without a limit: %d from policy %v (%v), want 3600 from the policy", r.MaxRunDurationSeconds, r.MaxRunDurationFromPolicy, err)
	}
	r, err = submit(60)
	if err != nil || r.MaxRunDurationSeconds != 60 || r.MaxRunDurationFromPolicy {
		t.Fatalf("a run with a shorter limit: %+v (%v)", r.Run, err)
	}
	if got, _ := f.svc.GetCompute(f.ctx, "default", authz.System, "local"); got.Limits == nil || got.Limits.MaxRunDurationSeconds != 3600 {
		t.Fatalf("local limits = %+v, want the run limit", got.Limits)
	}
}
