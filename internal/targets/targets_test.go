package targets_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/notify"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/targets"
	"github.com/paddock-ml/paddock/internal/testenv"
)

// fixture is the service over a real SQLite store, with the dispatcher's
// side (nodes, active runs, cancels) played by the test.
type fixture struct {
	t   *testing.T
	ctx context.Context
	st  *sqlite.Store
	svc *targets.Service

	mu       sync.Mutex
	nodes    []store.Node
	active   map[string][]string // target → run ids
	canceled []string
	changed  []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	st := testenv.Store(t)
	f := &fixture{t: t, ctx: ctx, st: st, active: map[string][]string{}}
	n := &notify.Notifier{}
	n.Subscribe(notify.Targets, func(key string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.changed = append(f.changed, key)
	})
	f.svc = &targets.Service{Store: st, Box: testenv.Box(t), Sizes: testenv.Sizes(t),
		Clock:    clock.NewFake(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)),
		Notifier: n,
		ActiveRuns: func(_ context.Context, _, target string) ([]string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.active[strings.ToLower(target)], nil
		},
		CancelRun: func(_ context.Context, _, id, _ string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.canceled = append(f.canceled, id)
			return nil
		},
		Nodes: func(_ context.Context, _, target string) ([]store.Node, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			var out []store.Node
			for _, n := range f.nodes {
				if target == "" || strings.EqualFold(n.Compute, target) {
					out = append(out, n)
				}
			}
			return out, nil
		},
	}
	if err := f.svc.EnsureBuiltins(ctx, "default", "admin"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []store.User{{Name: "admin", Admin: true}, {Name: "bob"}} {
		if err := st.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// create creates a target as user; mustCreate creates it as admin and
// marks it Succeeded, as the provisioning controller would.
func (f *fixture) create(user, name, typ string, props map[string]any) (api.Compute, error) {
	f.t.Helper()
	raw, _ := json.Marshal(props)
	return f.svc.CreateCompute(f.ctx, "default", user, api.ComputeCreate{Name: name, Type: typ, Properties: raw})
}

func (f *fixture) mustCreate(name, typ string, props map[string]any) {
	f.t.Helper()
	if _, err := f.create("admin", name, typ, props); err != nil {
		f.t.Fatalf("creating %s: %v", name, err)
	}
	testenv.Provisioned(f.t, f.st, "default", name)
}

// addNodes records n live nodes of a target with cores each.
func (f *fixture) addNodes(target string, n int, cores float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.nodes = append(f.nodes, store.Node{ID: fmt.Sprintf("%s-%d", target, len(f.nodes)), Workspace: "default",
			Compute: target, State: "idle", Cores: cores})
	}
}

func (f *fixture) setQuota(family string, dedicated, low int) {
	f.t.Helper()
	if _, err := f.svc.SetQuota(f.ctx, "default", api.QuotaSet{Family: family, DedicatedCores: &dedicated, LowPriorityCores: &low}); err != nil {
		f.t.Fatal(err)
	}
}

// Creating a cluster whose min_nodes would hold more cores than a quota
// leaves is refused; exactly the quota is fine. Low-priority clusters use
// the low-priority quota only; a family's quota binds only its family;
// an instance holds one node of dedicated cores.
func TestCreateChecksQuotas(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	unl := store.Unlimited
	f.setQuota("", 4, 4)
	f.setQuota("standardNCFamily", 6, unl)
	cluster := func(size string, minNodes int, low bool) map[string]any {
		p := map[string]any{"vm_size": size, "max_nodes": 8, "min_nodes": minNodes}
		if low {
			p["vm_priority"] = "lowpriority"
		}
		return p
	}
	tests := []struct {
		name, typ string
		props     map[string]any
		want      string // "" when allowed, else part of the conflict
	}{
		{"at-limit", "cluster", cluster("STANDARD_D2_V2", 2, false), ""},
		{"over-limit", "cluster", cluster("STANDARD_D2_V2", 3, false), "the workspace's dedicated core quota is 4, 0 in use"},
		{"low-at-limit", "cluster", cluster("STANDARD_D2_V2", 2, true), ""},
		{"low-over", "cluster", cluster("STANDARD_D2_V2", 3, true), "low-priority core quota is 4"},
		{"warmless", "cluster", cluster("STANDARD_D2_V2", 0, false), ""},
		{"gpu-over", "cluster", map[string]any{"vm_size": "STANDARD_NC6", "max_nodes": 2, "min_nodes": 1}, "the workspace's dedicated core quota is 4"},
		{"box-at-limit", "instance", map[string]any{"vm_size": "STANDARD_DS3_V2"}, ""},
		{"box-over", "instance", map[string]any{"vm_size": "STANDARD_DS4_V2"}, "an instance of STANDARD_DS4_V2 needs 8 more cores"},
	}
	for _, tc := range tests {
		_, err := f.create("admin", tc.name, tc.typ, tc.props)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want it allowed", tc.name, err)
		case tc.want != "" && (!errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want a conflict saying %q", tc.name, err, tc.want)
		}
	}

	// With nodes in use: the dedicated 4 cores are held by low-priority
	// nodes and nodes of another family, which do not count.
	f.setQuota("", 12, unl)
	f.mustCreate("spot", "cluster", cluster("STANDARD_D2_V2", 0, true))
	f.addNodes("spot", 4, 2)
	f.mustCreate("gpu", "cluster", map[string]any{"vm_size": "STANDARD_NC6", "max_nodes": 2})
	f.addNodes("gpu", 1, 6)
	f.mustCreate("ded", "cluster", cluster("STANDARD_D2_V2", 0, false))
	f.addNodes("ded", 1, 2)
	if _, err := f.create("admin", "d2-a", "cluster", cluster("STANDARD_D2_V2", 2, false)); err != nil {
		t.Errorf("4 dedicated cores with 8 of 12 in use: %v", err)
	}
	if _, err := f.create("admin", "d2-b", "cluster", cluster("STANDARD_D2_V2", 3, false)); err == nil || !strings.Contains(err.Error(), "dedicated core quota is 12, 8 in use") {
		t.Errorf("6 dedicated cores with 8 of 12 in use: %v", err)
	}
	if _, err := f.create("admin", "gpu2", "cluster", map[string]any{"vm_size": "STANDARD_NC6", "max_nodes": 2, "min_nodes": 1}); err == nil || !strings.Contains(err.Error(), "standardNCFamily family's dedicated core quota is 6, 6 in use") {
		t.Errorf("an NC6 node with the family's 6 cores in use: %v", err)
	}
}

// Raising min_nodes is checked against the quota too, counting the nodes
// the cluster already has.
func TestUpdateChecksQuota(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setQuota("", 6, store.Unlimited)
	f.mustCreate("cpu", "cluster", map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 8, "min_nodes": 1})
	f.addNodes("cpu", 1, 2)
	update := func(minNodes int) error {
		_, err := f.svc.UpdateCompute(f.ctx, "default", owner, "cpu", api.ComputeUpdate{Properties: json.RawMessage(fmt.Sprintf(`{"min_nodes":%d}`, minNodes))})
		if err == nil {
			testenv.Provisioned(f.t, f.st, "default", "cpu")
		}
		return err
	}
	if err := update(3); err != nil {
		t.Fatalf("min_nodes 3 with 1 node held, 6 cores: %v", err)
	}
	if err := update(4); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "min_nodes 4 of STANDARD_D2_V2 needs 6 more cores") {
		t.Fatalf("min_nodes 4: %v", err)
	}
}

// quota show lists every limit and what is in use, by priority and family.
func TestQuotasShowUse(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setQuota("", 16, store.Unlimited)
	f.setQuota("standardNCFamily", 12, 6)
	f.mustCreate("spot", "cluster", map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 8, "vm_priority": "lowpriority"})
	f.mustCreate("gpu", "cluster", map[string]any{"vm_size": "STANDARD_NC6", "max_nodes": 2})
	f.addNodes("spot", 2, 2)
	f.addNodes("gpu", 1, 6)
	f.nodes = append(f.nodes, store.Node{ID: "gone", Workspace: "default", Compute: "gpu", State: "leaving", Cores: 6})
	qs, err := f.svc.Quotas(f.ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Quota{
		{Family: "", DedicatedCores: 16, LowPriorityCores: store.Unlimited, DedicatedUsed: 6, LowPriorityUsed: 4},
		{Family: "standardDv2Family", DedicatedCores: store.Unlimited, LowPriorityCores: store.Unlimited, DedicatedUsed: 0, LowPriorityUsed: 4},
		{Family: "standardNCFamily", DedicatedCores: 12, LowPriorityCores: 6, DedicatedUsed: 6, LowPriorityUsed: 0},
	}
	if len(qs) != len(want) {
		t.Fatalf("quotas: %+v, want %+v", qs, want)
	}
	for i := range want {
		if qs[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, qs[i], want[i])
		}
	}
	for _, in := range []api.QuotaSet{{}, {Family: "noSuchFamily", DedicatedCores: new(int)}} {
		if _, err := f.svc.SetQuota(f.ctx, "default", in); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("SetQuota(%+v): %v, want invalid", in, err)
		}
	}
	// Changing a quota asks every cluster to look again.
	f.changed = nil
	f.setQuota("", 20, store.Unlimited)
	if strings.Join(f.changed, ",") != "default/gpu,default/spot" && strings.Join(f.changed, ",") != "default/spot,default/gpu" {
		t.Errorf("clusters told of the new quota: %v", f.changed)
	}
}

// Start, stop and restart move an instance's state only from the states
// that allow it; asking again is not an error; other users are refused.
func TestInstanceActions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.mustCreate("box", "instance", map[string]any{"vm_size": "STANDARD_DS3_V2"})
	state := func() string {
		rec, err := f.st.GetCompute(f.ctx, "default", "box")
		if err != nil {
			t.Fatal(err)
		}
		var st compute.InstanceStatus
		json.Unmarshal(rec.Status, &st)
		return st.State
	}
	setState := func(s string) {
		rec, _ := f.st.GetCompute(f.ctx, "default", "box")
		rec.Status, _ = json.Marshal(compute.InstanceStatus{State: s})
		if err := f.st.UpdateCompute(f.ctx, &rec); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		from, action, want string // want "" means a conflict
	}{
		{"Running", "stop", "Stopping"},
		{"Stopped", "stop", "Stopped"},
		{"Stopping", "stop", "Stopping"},
		{"Stopped", "start", "Starting"},
		{"Running", "start", "Running"},
		{"Failed", "start", "Starting"},
		{"Running", "restart", "Restarting"},
		{"Stopped", "restart", "Restarting"},
		{"Restarting", "restart", "Restarting"},
		{"Stopping", "restart", ""},
		{"Creating", "restart", ""},
		{"Restarting", "start", ""},
	}
	for _, tc := range tests {
		setState(tc.from)
		_, err := f.svc.InstanceAction(f.ctx, "default", owner, "box", tc.action)
		switch {
		case tc.want == "" && !errors.Is(err, api.ErrConflict):
			t.Errorf("%s from %s: %v, want a conflict", tc.action, tc.from, err)
		case tc.want != "" && err != nil:
			t.Errorf("%s from %s: %v", tc.action, tc.from, err)
		case tc.want != "" && state() != tc.want:
			t.Errorf("%s from %s: state %s, want %s", tc.action, tc.from, state(), tc.want)
		}
	}
	setState("Running")
	if _, err := f.svc.InstanceAction(f.ctx, "default", authz.Principal{User: "bob", Role: authz.Contributor}, "box", "stop"); !errors.Is(err, api.ErrForbidden) || state() != "Running" {
		t.Errorf("bob stopping admin's instance: %v, state %s", err, state())
	}
	if _, err := f.svc.InstanceAction(f.ctx, "default", owner, "box", "explode"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("an unknown action: %v", err)
	}
	if _, err := f.svc.InstanceAction(f.ctx, "default", owner, "local", "stop"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("stopping the local target: %v", err)
	}
}

// A submission gets its defaults, goes only to targets that take runs,
// and an instance takes only its user's runs.
func TestValidateRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.mustCreate("box", "instance", map[string]any{"vm_size": "STANDARD_DS3_V2"}) // admin's
	f.mustCreate("cpu", "cluster", map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 2})
	if _, err := f.create("admin", "pending", "cluster", map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 2}); err != nil {
		t.Fatal(err)
	}
	noSource := func(string) bool { return false }
	run, err := f.svc.ValidateRun(f.ctx, "default", "admin", api.RunSubmit{Compute: "CPU", Command: []string{"true"}}, noSource)
	if err != nil {
		t.Fatal(err)
	}
	if run.Compute != "cpu" || run.Resources.Cores != 1 || run.NodeCount != 1 || run.Experiment != "default" || run.Distribution != "none" || run.CreatedBy != "admin" {
		t.Errorf("defaults on a cluster: %+v", run.Run)
	}
	if run, err := f.svc.ValidateRun(f.ctx, "default", "admin", api.RunSubmit{Compute: "box", Command: []string{"true"}}, noSource); err != nil || run.Resources.Cores != 0 {
		t.Errorf("a run on an instance shares its cores (0 of its own): %+v, %v", run.Resources, err)
	}
	tests := []struct {
		user string
		in   api.RunSubmit
		want error
	}{
		{"bob", api.RunSubmit{Compute: "box", Command: []string{"true"}}, api.ErrForbidden},
		{"admin", api.RunSubmit{Compute: "pending", Command: []string{"true"}}, api.ErrConflict},
		{"admin", api.RunSubmit{Compute: "nope", Command: []string{"true"}}, api.ErrInvalid},
		{"admin", api.RunSubmit{Compute: "cpu"}, api.ErrInvalid},
		{"admin", api.RunSubmit{Compute: "cpu", Command: []string{"true"}, Source: "sha256:abc"}, api.ErrInvalid},
		{"admin", api.RunSubmit{Compute: "cpu", Command: []string{"true"}, NodeCount: 3}, api.ErrInvalid},
		{"admin", api.RunSubmit{Compute: "local", Command: []string{"true"}, NodeCount: 2}, api.ErrInvalid},
		{"admin", api.RunSubmit{Compute: "cpu", Command: []string{"true"}, Resources: &api.Resources{Cores: 3}}, api.ErrInvalid},
		{"admin", api.RunSubmit{Compute: "cpu", Command: []string{"true"}, Env: map[string]string{"PADDOCK_RUN_ID": "x"}}, api.ErrInvalid},
		{"admin", api.RunSubmit{Compute: "cpu", Command: []string{"true"}, Distribution: "horovod"}, api.ErrInvalid},
	}
	for _, tc := range tests {
		if _, err := f.svc.ValidateRun(f.ctx, "default", tc.user, tc.in, noSource); !errors.Is(err, tc.want) {
			t.Errorf("%s submitting %+v: %v, want a %s error", tc.user, tc.in, err, api.AsError(tc.want).Code)
		}
	}
}

// Deleting a target with active runs needs force, which cancels them;
// built-in targets are neither created nor deleted; a repeated delete
// succeeds.
func TestDeleteCompute(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.mustCreate("cpu", "cluster", map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 2})
	f.active["cpu"] = []string{"run-1", "run-2"}
	if _, err := f.svc.DeleteCompute(f.ctx, "default", owner, "cpu", false); !errors.Is(err, api.ErrConflict) || len(f.canceled) != 0 {
		t.Fatalf("delete with active runs: %v, canceled %v", err, f.canceled)
	}
	got, err := f.svc.DeleteCompute(f.ctx, "default", owner, "cpu", true)
	if err != nil || got.ProvisioningState != api.StateDeleting || strings.Join(f.canceled, ",") != "run-1,run-2" {
		t.Fatalf("delete --force: %+v %v, canceled %v", got.ProvisioningState, err, f.canceled)
	}
	if again, err := f.svc.DeleteCompute(f.ctx, "default", owner, "cpu", false); err != nil || again.ProvisioningState != api.StateDeleting {
		t.Errorf("a repeated delete: %v %v", again.ProvisioningState, err)
	}
	if _, err := f.svc.DeleteCompute(f.ctx, "default", owner, "local", true); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("deleting the local target: %v", err)
	}
	if _, err := f.create("admin", "mine", "local", nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("creating a local target: %v", err)
	}
	if _, err := f.svc.GetCompute(f.ctx, "nope", authz.System, "cpu"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("a target of a missing workspace: %v", err)
	}
}

// owner is the admin acting as Owner of the workspace.
var owner = authz.Principal{User: "admin", Role: authz.Owner}
