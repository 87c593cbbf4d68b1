package dispatch

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/testenv"
)

// harness is a dispatcher on a real SQLite store, with its loop running.
type harness struct {
	t     *testing.T
	ctx   context.Context
	st    *sqlite.Store
	box   *secret.Box
	clock *testenv.Clock
	opts  Options
	d     *Dispatcher

	stopLoop func() // stops the current loop and waits for it
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "paddock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.EnsureWorkspace(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	box, err := secret.NewBox(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if opts.APIURL == "" {
		opts.APIURL = "http://paddock.test:8765"
	}
	h := &harness{t: t, ctx: ctx, st: st, box: box, opts: opts, clock: testenv.NewClock()}
	h.start()
	t.Cleanup(func() { h.stopLoop() })
	return h
}

// start builds a new dispatcher on the store, loads it and runs its loop.
func (h *harness) start() {
	h.t.Helper()
	d := New(h.st, h.box, slog.New(slog.NewTextHandler(io.Discard, nil)), h.clock, h.opts)
	if err := d.Load(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	loopCtx, cancel := context.WithCancel(h.ctx)
	done := make(chan struct{})
	go func() { d.Run(loopCtx); close(done) }()
	h.d = d
	h.stopLoop = func() { cancel(); <-done }
}

// restart stops the loop and starts a new dispatcher on the same store, as
// a server restart does.
func (h *harness) restart() {
	h.t.Helper()
	h.stopLoop()
	h.start()
}

// submit queues a run asking for cores (and memory 1 GiB) on target local.
func (h *harness) submit(cores float64) store.Run {
	h.t.Helper()
	return h.submitRun(newRun(cores))
}

func (h *harness) submitRun(r store.Run) store.Run {
	h.t.Helper()
	out, err := h.d.Submit(h.ctx, r)
	if err != nil {
		h.t.Fatalf("Submit: %v", err)
	}
	return out
}

func newRun(cores float64) store.Run {
	return store.Run{Workspace: "default", Run: api.Run{
		Compute: "local", Command: []string{"python", "train.py"}, CreatedBy: "alice",
		Env:       map[string]string{"FOO": "bar"},
		Resources: api.Resources{Cores: cores, MemoryGB: 1}}}
}

// get reads a run from the store (the truth once an op returned).
func (h *harness) get(id string) store.Run {
	h.t.Helper()
	r, err := h.st.GetRun(h.ctx, "default", id)
	if err != nil {
		h.t.Fatalf("GetRun %s: %v", id, err)
	}
	return r
}

func (h *harness) wantStatus(id string, want api.RunStatus) store.Run {
	h.t.Helper()
	r := h.get(id)
	if r.Status != want {
		h.t.Fatalf("run %s: status %s (reason %q, error %q), want %s", id, r.Status, r.StatusReason, r.Error, want)
	}
	return r
}

// node reads a node's live record.
func (h *harness) node(id string) store.Node {
	h.t.Helper()
	n, ok := h.d.NodeByID(h.ctx, id)
	if !ok {
		h.t.Fatalf("node %s is not known", id)
	}
	return n
}

// free returns a node's free cores and GPUs as the loop sees them.
func (h *harness) free(id string) (cores float64, gpus []int) {
	h.t.Helper()
	err := h.d.do(h.ctx, func(*txn) error {
		nd := h.d.nodes[id]
		cores, gpus = nd.freeCores, append([]int(nil), nd.freeGPUs...)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return cores, gpus
}

// checkNodes runs the lost-node check once, through the loop.
func (h *harness) checkNodes() {
	h.t.Helper()
	if err := h.d.do(h.ctx, h.d.checkNodes); err != nil {
		h.t.Fatal(err)
	}
}

// agent is a fake node agent that calls the dispatcher directly.
type agent struct {
	h      *harness
	id     string
	active map[string]int // run id → attempt the agent runs
}

// addNode records a node (as a provider does) and says hello for it with
// the given capacity.
func (h *harness) addNode(id string, cores float64, gpus int) *agent {
	h.t.Helper()
	return h.addNodeTarget(id, "local", cores, gpus)
}

func (h *harness) addNodeTarget(id, compute string, cores float64, gpus int) *agent {
	h.t.Helper()
	if err := h.d.AddNode(h.ctx, store.Node{ID: id, Workspace: "default", Compute: compute, TokenHash: "hash-" + id, CreatedAt: h.clock.Now()}); err != nil {
		h.t.Fatalf("AddNode: %v", err)
	}
	a := &agent{h: h, id: id, active: map[string]int{}}
	a.hello(cores, gpus)
	return a
}

func (a *agent) hello(cores float64, gpus int) store.Node {
	a.h.t.Helper()
	hello := api.AgentHello{Hostname: a.id + ".local", Cores: cores, MemoryGB: 16, Version: "test"}
	for i := range gpus {
		hello.GPUs = append(hello.GPUs, api.GPUInfo{Index: i, Name: "H100"})
	}
	n, err := a.h.d.Hello(a.h.ctx, a.id, hello)
	if err != nil {
		a.h.t.Fatalf("Hello %s: %v", a.id, err)
	}
	return n
}

func (a *agent) refs() []api.AttemptRef {
	var out []api.AttemptRef
	for id, n := range a.active {
		out = append(out, api.AttemptRef{RunID: id, Attempt: n})
	}
	return out
}

// poll polls with what the agent runs and takes up every assignment.
func (a *agent) poll() api.AgentWork {
	a.h.t.Helper()
	w, _, err := a.h.d.Poll(a.h.ctx, a.id, a.refs(), 0)
	if err != nil {
		a.h.t.Fatalf("Poll %s: %v", a.id, err)
	}
	for _, s := range w.Stale { // as the real agent: stale first, then new work
		if a.active[s.RunID] == s.Attempt {
			delete(a.active, s.RunID)
		}
	}
	for _, as := range w.Assignments {
		a.active[as.RunID] = as.Attempt
	}
	return w
}

// report reports on the agent's current attempt of a run.
func (a *agent) report(runID string, rep api.AttemptReport) {
	a.h.t.Helper()
	n, ok := a.active[runID]
	if !ok {
		a.h.t.Fatalf("agent %s does not run %s", a.id, runID)
	}
	if err := a.h.d.Report(a.h.ctx, a.id, api.AttemptRef{RunID: runID, Attempt: n}, rep); err != nil {
		a.h.t.Fatalf("Report %s %s: %v", runID, rep.Status, err)
	}
	if rep.Status.Terminal() {
		delete(a.active, runID)
	}
}

func (a *agent) running(runID string) {
	a.h.t.Helper()
	a.report(runID, api.AttemptReport{Status: api.RunRunning})
}

func (a *agent) exit(runID string, code int) {
	a.h.t.Helper()
	status := api.RunCompleted
	if code != 0 {
		status = api.RunFailed
	}
	a.report(runID, api.AttemptReport{Status: status, ExitCode: &code})
}

func assignmentIDs(w api.AgentWork) []string {
	var out []string
	for _, as := range w.Assignments {
		out = append(out, as.RunID)
	}
	return out
}
