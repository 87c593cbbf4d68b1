package nodes_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/dispatch"
	"github.com/paddock-ml/paddock/internal/nodes"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/targets"
	"github.com/paddock-ml/paddock/internal/testenv"
)

// fakeProvider makes nodes by recording them; the test plays their agents.
type fakeProvider struct {
	name    string // "local" when empty
	mu      sync.Mutex
	live    map[string]provider.NodeSpec
	deleted []string
}

func (p *fakeProvider) Name() string {
	if p.name == "" {
		return "local"
	}
	return p.name
}

func (p *fakeProvider) Create(_ context.Context, spec provider.NodeSpec) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live[spec.ID] = spec
	return nil
}

func (p *fakeProvider) Delete(_ context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.live[id]; ok {
		p.deleted = append(p.deleted, id)
	}
	delete(p.live, id)
	return nil
}

func (p *fakeProvider) List(context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for id := range p.live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// spec is the spec a live node was made with.
func (p *fakeProvider) spec(id string) (provider.NodeSpec, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	spec, ok := p.live[id]
	return spec, ok
}

// wasDeleted reports whether the controller asked for node id to go.
func (p *fakeProvider) wasDeleted(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.deleted, id)
}

// fixture is the autoscaler's controller over the real dispatcher (its
// loop running) and a real SQLite store, with a fake provider and a fake
// clock shared by both: a pass happens only when the test calls pass, so
// nothing here sleeps.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	st    *sqlite.Store
	clock *testenv.Clock
	prov  *fakeProvider
	dbx   *fakeProvider // the databricks provider
	disp  *dispatch.Dispatcher
	ws    *targets.Service
	ctrl  *nodes.Controller
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	st, box, sizes := testenv.Store(t), testenv.Box(t), testenv.Sizes(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &fixture{t: t, ctx: ctx, st: st, clock: testenv.NewClock(), prov: &fakeProvider{live: map[string]provider.NodeSpec{}},
		dbx: &fakeProvider{name: "databricks", live: map[string]provider.NodeSpec{}}}
	f.disp = dispatch.New(st, box, log, f.clock, dispatch.Options{APIURL: "http://paddock.test",
		// The loop checks heartbeats when the fake clock moves: the tests
		// play agents that poll only when they say so.
		NodeLostAfter: 1000 * time.Hour})
	if err := f.disp.Load(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Go(t, f.disp.Run)

	providers := &provider.Registry{}
	providers.Add(f.prov)
	providers.Add(f.dbx)
	n := 0
	f.ctrl = &nodes.Controller{Store: st, Dispatch: f.disp, Providers: providers, Sizes: sizes, Log: log,
		Clock: f.clock, ServerURL: "http://paddock.test", HomesDir: filepath.Join(t.TempDir(), "homes"),
		NewToken:  func() string { n++; return "pdn_test" + strings.Repeat("x", n) },
		TokenHash: func(s string) string { return "hash-" + s }}
	f.ctrl.Init()
	f.ws = &targets.Service{Store: st, Box: box, Sizes: sizes, Clock: f.clock,
		ActiveRuns: f.disp.ActiveRuns, CancelRun: f.disp.CancelRun, Nodes: f.disp.Nodes}
	if err := f.ws.EnsureBuiltins(ctx, "default", "admin"); err != nil {
		t.Fatal(err)
	}
	if err := st.PutUser(ctx, store.User{Name: "admin", Admin: true}); err != nil {
		t.Fatal(err)
	}
	return f
}

// create makes a target through the workspace service (so its properties
// are validated and defaulted) and marks it provisioned, as the
// provisioning controller would.
func (f *fixture) create(name, typ string, props map[string]any) {
	f.t.Helper()
	raw, _ := json.Marshal(props)
	if _, err := f.ws.CreateCompute(f.ctx, "default", "admin", api.ComputeCreate{Name: name, Type: typ, Properties: raw}); err != nil {
		f.t.Fatalf("creating %s: %v", name, err)
	}
	testenv.Provisioned(f.t, f.st, "default", name)
}

// cluster makes a cluster of vmSize with 0..max nodes and the given idle
// time; extra properties (vm_priority, min_nodes) are merged in.
func (f *fixture) cluster(name, vmSize string, maxNodes int, idle time.Duration, extra map[string]any) {
	f.t.Helper()
	props := map[string]any{"vm_size": vmSize, "max_nodes": maxNodes, "idle_seconds_before_scaledown": int(idle / time.Second)}
	for k, v := range extra {
		props[k] = v
	}
	f.create(name, "cluster", props)
}

// quota sets a quota (store.Unlimited for no limit).
func (f *fixture) quota(family string, dedicated, lowPriority int) {
	f.t.Helper()
	if _, err := f.ws.SetQuota(f.ctx, "default", api.QuotaSet{Family: family, DedicatedCores: &dedicated, LowPriorityCores: &lowPriority}); err != nil {
		f.t.Fatal(err)
	}
}

// pass runs one reconcile pass over a target.
func (f *fixture) pass(name string) {
	f.t.Helper()
	if _, err := f.ctrl.Reconcile(f.ctx, "default/"+strings.ToLower(name)); err != nil {
		f.t.Fatalf("pass over %s: %v", name, err)
	}
}

// submit queues a run asking for cores on a target.
func (f *fixture) submit(target string, cores float64) string {
	f.t.Helper()
	r, err := f.disp.Submit(f.ctx, store.Run{Workspace: "default", Run: api.Run{Compute: target, CreatedBy: "admin",
		Command: []string{"true"}, NodeCount: 1, Resources: api.Resources{Cores: cores}}})
	if err != nil {
		f.t.Fatalf("submit to %s: %v", target, err)
	}
	return r.ID
}

// nodes lists a target's nodes that are not on their way out.
func (f *fixture) nodes(target string) []store.Node {
	f.t.Helper()
	all, err := f.disp.Nodes(f.ctx, "default", target)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []store.Node
	for _, n := range all {
		if n.State != store.NodeLeaving {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b store.Node) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// ready plays the agent of every starting node of a target: it says hello
// with the node's size, so the node becomes usable.
func (f *fixture) ready(target string) {
	f.t.Helper()
	for _, n := range f.nodes(target) {
		if n.State != store.NodeStarting {
			continue
		}
		spec, ok := f.prov.spec(n.ID)
		if !ok {
			spec, ok = f.dbx.spec(n.ID)
		}
		if !ok {
			f.t.Fatalf("node %s of %s is recorded but the provider never made it", n.ID, target)
		}
		if _, err := f.disp.Hello(f.ctx, n.ID, api.AgentHello{Hostname: n.ID, Cores: spec.Cores, MemoryGB: spec.MemoryGB, Version: "test"}); err != nil {
			f.t.Fatalf("hello of %s: %v", n.ID, err)
		}
	}
}

// poll plays one agent poll of a node (with its open SSH sessions) and
// returns the runs it was given.
func (f *fixture) poll(nodeID string, sshSessions int) []string {
	f.t.Helper()
	w, _, err := f.disp.Poll(f.ctx, nodeID, nil, sshSessions)
	if err != nil {
		f.t.Fatalf("poll of %s: %v", nodeID, err)
	}
	var ids []string
	for _, a := range w.Assignments {
		ids = append(ids, a.RunID)
	}
	return ids
}

// finish reports attempt 1 of a run on a node as Completed.
func (f *fixture) finish(nodeID, runID string) {
	f.t.Helper()
	zero := 0
	if err := f.disp.Report(f.ctx, nodeID, api.AttemptRef{RunID: runID, Attempt: 1}, api.AttemptReport{Status: api.RunCompleted, ExitCode: &zero}); err != nil {
		f.t.Fatalf("report of %s on %s: %v", runID, nodeID, err)
	}
}

// status reads a target's status document into v.
func (f *fixture) status(name string, v any) {
	f.t.Helper()
	rec, err := f.st.GetCompute(f.ctx, "default", name)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := json.Unmarshal(rec.Status, v); err != nil {
		f.t.Fatalf("status of %s: %v (%s)", name, err, rec.Status)
	}
}

// reason is a run's status_reason.
func (f *fixture) reason(id string) string {
	f.t.Helper()
	r, err := f.st.GetRun(f.ctx, "default", id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r.StatusReason
}
