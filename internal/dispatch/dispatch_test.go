package dispatch

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/testenv"
)

func TestSubmitPlaceDeliver(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	run := h.submit(1)
	if run.Status != api.RunQueued || run.ID == "" || run.Attempt != 0 || run.Seq != 1 {
		t.Fatalf("submitted run = status %s id %q attempt %d seq %d, want Queued, an id, attempt 0, seq 1", run.Status, run.ID, run.Attempt, run.Seq)
	}
	h.wantStatus(run.ID, api.RunQueued)

	a := h.addNode("n1", 4, 0)
	got := h.wantStatus(run.ID, api.RunStarting)
	if got.Node != "n1" || got.Attempt != 1 || len(got.Attempts) != 1 || got.Attempts[0].Node != "n1" || got.Attempts[0].Status != api.RunStarting {
		t.Fatalf("placed run: node %q attempt %d attempts %+v", got.Node, got.Attempt, got.Attempts)
	}
	if n := h.node("n1"); n.State != store.NodeRunning {
		t.Errorf("node state %q, want %q", n.State, store.NodeRunning)
	}

	w := a.poll()
	if len(w.Assignments) != 1 || len(w.Cancel) != 0 || len(w.Stale) != 0 {
		t.Fatalf("poll = %+v, want one assignment", w)
	}
	as := w.Assignments[0]
	if as.RunID != run.ID || as.Attempt != 1 || as.Workspace != "default" || !slices.Equal(as.Command, []string{"python", "train.py"}) || as.LogAck != 0 {
		t.Errorf("assignment = %+v", as)
	}
	wantEnv := map[string]string{
		"FOO":               "bar",
		"PADDOCK_RUN_ID":    run.ID,
		"PADDOCK_ATTEMPT":   "1",
		"PADDOCK_WORKSPACE": "default",
		"PADDOCK_API_URL":   "http://paddock.test:8765",
		"PADDOCK_RUN_TOKEN": h.d.RunToken(run.ID, 1),
		// PADDOCK_EXPERIMENT is always set, empty here.
		"PADDOCK_EXPERIMENT": "",
	}
	if diff := cmp.Diff(wantEnv, as.Env); diff != "" {
		t.Errorf("assignment env (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(as.Env["PADDOCK_RUN_TOKEN"], "pdr_"+run.ID+".1.") {
		t.Errorf("run token %q does not name the run and attempt", as.Env["PADDOCK_RUN_TOKEN"])
	}

	// A poll that reports the attempt gets nothing more.
	if w := a.poll(); len(w.Assignments)+len(w.Cancel)+len(w.Stale) != 0 {
		t.Errorf("second poll = %+v, want nothing", w)
	}
}

// tokenThatParses finds a run id whose attempt-1 token round-trips, so the
// fencing checks below test fencing and not the '_' bug (see
// TestRunTokenRoundTripsForEveryRun).
func tokenThatParses(t *testing.T, d *Dispatcher) (string, string) {
	t.Helper()
	for i := range 1000 {
		id := fmt.Sprintf("run-%04d", i)
		tok := d.RunToken(id, 1)
		if _, _, ok := d.ParseRunToken(tok); ok {
			return id, tok
		}
	}
	t.Fatal("no run token parses at all")
	return "", ""
}

func TestRunTokenFencing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	id, tok := tokenThatParses(t, h.d)
	gotID, gotAttempt, ok := h.d.ParseRunToken(tok)
	if !ok || gotID != id || gotAttempt != 1 {
		t.Fatalf("ParseRunToken(%q) = %q, %d, %v; want %q, 1, true", tok, gotID, gotAttempt, ok, id)
	}
	sig := tok[strings.LastIndex(tok, ".")+1:]
	flip := func(s string) string {
		b := []byte(s)
		if b[len(b)-1] == 'A' {
			b[len(b)-1] = 'B'
		} else {
			b[len(b)-1] = 'A'
		}
		return string(b)
	}
	other := otherKeyDispatcher(t)
	tests := []struct{ name, tok string }{
		{"tampered signature", "pdr_" + id + ".1." + flip(sig)},
		{"another attempt number", "pdr_" + id + ".2." + sig},
		{"another run", "pdr_run-other.1." + sig},
		{"signed by another key", other.RunToken(id, 1)},
		{"no signature", "pdr_" + id + ".1."},
		{"wrong prefix", "pdn_" + id + ".1." + sig},
		{"not a token", "hello"},
		{"empty", ""},
	}
	for _, tt := range tests {
		if gotID, n, ok := h.d.ParseRunToken(tt.tok); ok {
			t.Errorf("%s: ParseRunToken(%q) = %q, %d, true; want it refused", tt.name, tt.tok, gotID, n)
		}
	}
}

// otherKeyDispatcher returns a dispatcher signing with a different key.
func otherKeyDispatcher(t *testing.T) *Dispatcher {
	t.Helper()
	key := make([]byte, 32)
	key[0] = 1
	box, err := secret.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	return New(nil, box, nil, nil, Options{})
}

// Every run token parses back, whatever its signature contains (the
// base64url alphabet has '_' and '-'; the separator is '.').
func TestRunTokenRoundTripsForEveryRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	bad := 0
	for i := range 200 {
		id := NewRunID()
		attempt := i%3 + 1
		tok := h.d.RunToken(id, attempt)
		gotID, gotAttempt, ok := h.d.ParseRunToken(tok)
		if !ok || gotID != id || gotAttempt != attempt {
			bad++
			if bad <= 3 {
				t.Errorf("ParseRunToken(RunToken(%q, %d)) = %q, %d, %v", id, attempt, gotID, gotAttempt, ok)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of 200 run tokens do not round-trip", bad)
	}
}

func TestCUDAVisibleDevices(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		nodeGPUs  int
		runGPUs   int
		wantSet   bool
		wantValue string
	}{
		{"CPU node, CPU run", 0, 0, false, ""},
		{"GPU node, CPU run: GPUs hidden", 2, 0, true, ""},
		{"GPU node, one GPU", 2, 1, true, "0"},
		{"GPU node, both GPUs", 2, 2, true, "0,1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{})
			a := h.addNode("n1", 8, tt.nodeGPUs)
			r := newRun(1)
			r.Resources.GPUs = tt.runGPUs
			run := h.submitRun(r)
			w := a.poll()
			if len(w.Assignments) != 1 {
				t.Fatalf("poll = %+v, want one assignment", w)
			}
			as := w.Assignments[0]
			v, ok := as.Env["CUDA_VISIBLE_DEVICES"]
			if ok != tt.wantSet || v != tt.wantValue {
				t.Errorf("CUDA_VISIBLE_DEVICES = %q (set %v), want %q (set %v)", v, ok, tt.wantValue, tt.wantSet)
			}
			if len(as.GPUIndices) != tt.runGPUs {
				t.Errorf("GPUIndices = %v, want %d", as.GPUIndices, tt.runGPUs)
			}
			if got := h.get(run.ID).Attempts[0].GPUs; !slices.Equal(got, as.GPUIndices) {
				t.Errorf("stored attempt GPUs %v, assignment %v", got, as.GPUIndices)
			}
			if _, free := h.free("n1"); len(free) != tt.nodeGPUs-tt.runGPUs {
				t.Errorf("free GPUs %v, want %d", free, tt.nodeGPUs-tt.runGPUs)
			}
		})
	}
}

func TestGPUsAreReleased(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 8, 2)
	one := newRun(1)
	one.Resources.GPUs = 1
	r1, r2 := h.submitRun(one), h.submitRun(one)
	a.poll()
	got := [][]int{h.get(r1.ID).Attempts[0].GPUs, h.get(r2.ID).Attempts[0].GPUs}
	if diff := cmp.Diff([][]int{{0}, {1}}, got); diff != "" {
		t.Fatalf("GPUs of the two runs (-want +got):\n%s", diff)
	}
	r3 := h.submitRun(one)
	h.wantStatus(r3.ID, api.RunQueued)
	a.exit(r1.ID, 0)
	if g := h.wantStatus(r3.ID, api.RunStarting).Attempts[0].GPUs; !slices.Equal(g, []int{0}) {
		t.Errorf("third run got GPUs %v, want the freed [0]", g)
	}
}

func TestFIFO(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		nodeFirst  bool
		cores      []float64
		firstPlace []int // indexes placed at first
		afterFirst []int // indexes placed once run 0 ends
	}{
		{"2,1,1 on a ready node", true, []float64{2, 1, 1}, []int{0}, []int{1, 2}},
		{"2,1,1 before the node", false, []float64{2, 1, 1}, []int{0}, []int{1, 2}},
		{"1,2,1: the big run blocks the small one behind it", true, []float64{1, 2, 1}, []int{0}, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{})
			var a *agent
			if tt.nodeFirst {
				a = h.addNode("n1", 2, 0)
			}
			var runs []store.Run
			for _, c := range tt.cores {
				runs = append(runs, h.submit(c))
			}
			if !tt.nodeFirst {
				for _, r := range runs {
					h.wantStatus(r.ID, api.RunQueued)
				}
				a = h.addNode("n1", 2, 0)
			}
			check := func(when string, placed []int) {
				t.Helper()
				for i, r := range runs {
					got := h.get(r.ID).Status
					want := api.RunQueued
					if slices.Contains(placed, i) {
						want = api.RunStarting
					} else if got.Terminal() {
						continue
					}
					if got != want {
						t.Errorf("%s: run %d (%g cores) is %s, want %s", when, i, tt.cores[i], got, want)
					}
				}
			}
			check("at first", tt.firstPlace)
			a.poll()
			a.running(runs[0].ID)
			a.exit(runs[0].ID, 0)
			check("after the first ended", tt.afterFirst)
		})
	}
}

func TestReports(t *testing.T) {
	t.Parallel()
	// The clock jumps a minute without the node polling: not lost.
	h := newHarness(t, Options{NodeLostAfter: time.Hour})
	a := h.addNode("n1", 1, 0)
	r1, r2 := h.submit(1), h.submit(1)
	a.poll()

	// Running sets started_at, from the clock.
	h.clock.Advance(5 * time.Second)
	startedAt := h.clock.Now()
	a.running(r1.ID)
	got := h.wantStatus(r1.ID, api.RunRunning)
	if got.StartedAt == nil || !got.StartedAt.Equal(startedAt) || got.Attempts[0].StartedAt == nil || got.Attempts[0].Status != api.RunRunning {
		t.Fatalf("after Running: started_at %v, attempt %+v; want %v", got.StartedAt, got.Attempts[0], startedAt)
	}
	// A second Running does not move started_at.
	h.clock.Advance(time.Second)
	a.running(r1.ID)
	if got := h.get(r1.ID); !got.StartedAt.Equal(startedAt) {
		t.Errorf("started_at moved to %v", got.StartedAt)
	}

	// A late Preparing does not move the status back.
	a.report(r1.ID, api.AttemptReport{Status: api.RunPreparing})
	h.wantStatus(r1.ID, api.RunRunning)
	a.report(r1.ID, api.AttemptReport{Status: api.RunFinalizing})
	h.wantStatus(r1.ID, api.RunFinalizing)
	a.running(r1.ID)
	h.wantStatus(r1.ID, api.RunFinalizing)

	// The agent cannot report a status it does not own.
	err := h.d.Report(h.ctx, "n1", api.AttemptRef{RunID: r1.ID, Attempt: 1}, api.AttemptReport{Status: api.RunQueued})
	if !errors.Is(err, api.ErrInvalid) {
		t.Errorf("reporting Queued: %v, want ErrInvalid", err)
	}

	// r2 waits for the single core.
	h.wantStatus(r2.ID, api.RunQueued)
	h.clock.Advance(time.Minute)
	endedAt := h.clock.Now()
	a.report(r1.ID, api.AttemptReport{Status: api.RunCompleted, ExitCode: new(0),
		Outputs: []api.OutputFile{{Path: "model.pt", Size: 3}}})
	got = h.wantStatus(r1.ID, api.RunCompleted)
	if got.EndedAt == nil || !got.EndedAt.Equal(endedAt) || got.ExitCode == nil || *got.ExitCode != 0 ||
		got.Attempts[0].Status != api.RunCompleted || len(got.Outputs) != 1 {
		t.Errorf("completed run: ended %v exit %v attempt %+v outputs %v", got.EndedAt, got.ExitCode, got.Attempts[0], got.Outputs)
	}
	// The core is free again and r2 is placed.
	h.wantStatus(r2.ID, api.RunStarting)
	a.poll()
	// A terminal report with an exit code and no Running sets started_at.
	a.report(r2.ID, api.AttemptReport{Status: api.RunFailed, ExitCode: new(3), Reason: "NonZeroExit", Error: "the command exited with code 3"})
	got = h.wantStatus(r2.ID, api.RunFailed)
	if got.StatusReason != "NonZeroExit" || got.Error == "" || *got.ExitCode != 3 || got.StartedAt == nil {
		t.Errorf("failed run: reason %q error %q exit %v started %v", got.StatusReason, got.Error, got.ExitCode, got.StartedAt)
	}
	if cores, _ := h.free("n1"); cores != 1 {
		t.Errorf("free cores %g after both ended, want 1", cores)
	}
	if n := h.node("n1"); n.State != store.NodeIdle {
		t.Errorf("node state %q, want idle", n.State)
	}
}

func TestStaleReports(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 4, 0)
	h.addNode("n2", 4, 0)
	r := h.submit(1)
	ended := h.submit(1)
	a.poll()
	a.exit(ended.ID, 0)
	tests := []struct {
		name string
		node string
		ref  api.AttemptRef
	}{
		{"wrong attempt", "n1", api.AttemptRef{RunID: r.ID, Attempt: 2}},
		{"older attempt", "n1", api.AttemptRef{RunID: r.ID, Attempt: 0}},
		{"wrong node", "n2", api.AttemptRef{RunID: r.ID, Attempt: 1}},
		{"unknown run", "n1", api.AttemptRef{RunID: "run-nope", Attempt: 1}},
		{"ended run", "n1", api.AttemptRef{RunID: ended.ID, Attempt: 1}},
	}
	for _, tt := range tests {
		for _, status := range []api.RunStatus{api.RunRunning, api.RunCompleted} {
			err := h.d.Report(h.ctx, tt.node, tt.ref, api.AttemptReport{Status: status, ExitCode: new(0)})
			if !errors.Is(err, api.ErrConflict) {
				t.Errorf("%s, %s: Report = %v, want ErrConflict", tt.name, status, err)
			}
		}
	}
	// Nothing changed.
	h.wantStatus(r.ID, api.RunStarting)
	h.wantStatus(ended.ID, api.RunCompleted)
}

func TestPollFencing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 4, 0)
	starting, running := h.submit(1), h.submit(1)

	// An agent reporting attempts the server does not know is told they are stale.
	a.active["run-unknown"] = 1
	a.active[running.ID] = 7
	w := a.poll()
	wantStale := []api.AttemptRef{{RunID: running.ID, Attempt: 7}, {RunID: "run-unknown", Attempt: 1}}
	slices.SortFunc(w.Stale, func(x, y api.AttemptRef) int { return strings.Compare(x.RunID, y.RunID) })
	slices.SortFunc(wantStale, func(x, y api.AttemptRef) int { return strings.Compare(x.RunID, y.RunID) })
	if diff := cmp.Diff(wantStale, w.Stale); diff != "" {
		t.Errorf("stale (-want +got):\n%s", diff)
	}
	if ids := assignmentIDs(w); len(ids) != 2 {
		t.Fatalf("assignments %v, want both runs", ids)
	}
	a.running(running.ID)

	// The agent lost the Starting run (never got the answer): redelivered.
	delete(a.active, starting.ID)
	w = a.poll()
	if ids := assignmentIDs(w); !slices.Equal(ids, []string{starting.ID}) {
		t.Errorf("assignments %v, want the Starting run redelivered", ids)
	} else if w.Assignments[0].Attempt != 1 {
		t.Errorf("redelivered attempt %d, want the same attempt 1", w.Assignments[0].Attempt)
	}
	h.wantStatus(starting.ID, api.RunStarting)

	// The agent no longer reports the Running run: it is gone with the agent.
	delete(a.active, running.ID)
	w = a.poll()
	if len(w.Assignments) != 0 {
		t.Errorf("assignments %v, want none", assignmentIDs(w))
	}
	got := h.wantStatus(running.ID, api.RunFailed)
	if got.StatusReason != "NodeLost" || got.Attempts[0].Reason != "NodeLost" {
		t.Errorf("reason %q, attempt reason %q, want NodeLost", got.StatusReason, got.Attempts[0].Reason)
	}
	if cores, _ := h.free("n1"); cores != 3 {
		t.Errorf("free cores %g, want 3", cores)
	}
	// Its late reports are stale now.
	err := h.d.Report(h.ctx, "n1", api.AttemptRef{RunID: running.ID, Attempt: 1}, api.AttemptReport{Status: api.RunCompleted, ExitCode: new(0)})
	if !errors.Is(err, api.ErrConflict) {
		t.Errorf("late report: %v, want ErrConflict", err)
	}

	// Unknown nodes and nodes that did not say hello cannot poll.
	if _, _, err := h.d.Poll(h.ctx, "n-nope", nil, 0); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("poll of an unknown node: %v, want ErrNotFound", err)
	}
	if err := h.d.AddNode(h.ctx, store.Node{ID: "n2", Workspace: "default", Compute: "local", TokenHash: "hash-n2"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.d.Poll(h.ctx, "n2", nil, 0); !errors.Is(err, api.ErrConflict) {
		t.Errorf("poll before hello: %v, want ErrConflict", err)
	}
}

// A poll sent before the agent heard that its final report was stored
// still lists the attempt: that is not stale. An attempt the server ended
// itself (a cancel of an unreachable node, NodeLost) still is.
func TestPollAfterTheFinalReport(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 4, 0)
	r := h.submit(1)
	a.poll()
	a.running(r.ID)
	before := a.refs() // the snapshot a long poll in flight carries
	a.exit(r.ID, 0)
	w, _, err := h.d.Poll(h.ctx, "n1", before, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Stale) != 0 {
		t.Errorf("stale %v: the attempt ended by the agent's own report", w.Stale)
	}
	// The same attempt listed again after a poll without it is stale: the
	// agent had forgotten it, so another listing is something else.
	if _, _, err := h.d.Poll(h.ctx, "n1", nil, 0); err != nil {
		t.Fatal(err)
	}
	if w, _, _ := h.d.Poll(h.ctx, "n1", before, 0); len(w.Stale) != 1 {
		t.Errorf("stale %v, want the forgotten attempt", w.Stale)
	}
}

func TestPollWakesOnAssignment(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 4, 0)
	_, wake, err := h.d.Poll(h.ctx, "n1", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
		t.Fatal("woken with nothing to do")
	default:
	}
	r := h.submit(1)
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Fatal("a held poll was not woken by a placement")
	}
	if ids := assignmentIDs(a.poll()); !slices.Equal(ids, []string{r.ID}) {
		t.Errorf("assignments %v", ids)
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 4, 0)
	r := h.submit(1)
	a.poll()
	changed := h.d.Watch(r.ID)
	a.running(r.ID)
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("watchers were not told of the change")
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	t.Run("queued run ends at once", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{})
		r := h.submit(1)
		got, err := h.d.Cancel(h.ctx, "default", r.ID, "canceled by alice")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != api.RunCanceled {
			t.Errorf("Cancel returned status %s", got.Status)
		}
		got = h.wantStatus(r.ID, api.RunCanceled)
		if got.Attempt != 0 || len(got.Attempts) != 0 || got.StatusReason != "Canceled" || got.Error != "canceled by alice" || got.EndedAt == nil {
			t.Errorf("canceled run: attempt %d attempts %v reason %q error %q ended %v", got.Attempt, got.Attempts, got.StatusReason, got.Error, got.EndedAt)
		}
		// A node that appears later does not get it.
		a := h.addNode("n1", 4, 0)
		if w := a.poll(); len(w.Assignments) != 0 {
			t.Errorf("canceled run delivered: %v", assignmentIDs(w))
		}
	})
	t.Run("placed run is stopped by its agent", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{})
		a := h.addNode("n1", 1, 0)
		r, next := h.submit(1), h.submit(1)
		a.poll()
		a.running(r.ID)
		got, err := h.d.Cancel(h.ctx, "default", r.ID, "canceled by alice")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != api.RunRunning || got.CancelRequested != "canceled by alice" {
			t.Errorf("Cancel returned status %s, cancel requested %q", got.Status, got.CancelRequested)
		}
		if s := h.get(r.ID); s.Status != api.RunRunning || s.CancelRequested == "" {
			t.Errorf("stored: status %s, cancel requested %q", s.Status, s.CancelRequested)
		}
		want := []api.CancelOrder{{RunID: r.ID, Attempt: 1, Reason: "canceled by alice"}}
		for i := range 2 { // until the agent reports, every poll carries it
			if diff := cmp.Diff(want, a.poll().Cancel); diff != "" {
				t.Errorf("poll %d cancel list (-want +got):\n%s", i, diff)
			}
		}
		// The killed process exits non-zero; the run ends Canceled.
		a.report(r.ID, api.AttemptReport{Status: api.RunFailed, ExitCode: new(143), Reason: "NonZeroExit"})
		got = h.wantStatus(r.ID, api.RunCanceled)
		if got.StatusReason != "Canceled" || got.Error != "canceled by alice" || got.CancelRequested != "" {
			t.Errorf("canceled run: reason %q error %q cancel requested %q", got.StatusReason, got.Error, got.CancelRequested)
		}
		if w := a.poll(); len(w.Cancel) != 0 {
			t.Errorf("cancel still sent after the run ended: %+v", w.Cancel)
		}
		h.wantStatus(next.ID, api.RunStarting)

		// Cancelling an ended run returns it unchanged.
		again, err := h.d.Cancel(h.ctx, "default", r.ID, "again")
		if err != nil {
			t.Fatal(err)
		}
		if again.Status != api.RunCanceled || again.Error != "canceled by alice" {
			t.Errorf("second cancel: status %s error %q", again.Status, again.Error)
		}
	})
	t.Run("a run that completes before the cancel lands stays Completed", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{})
		a := h.addNode("n1", 1, 0)
		r := h.submit(1)
		a.poll()
		if _, err := h.d.Cancel(h.ctx, "default", r.ID, "too late"); err != nil {
			t.Fatal(err)
		}
		a.exit(r.ID, 0)
		h.wantStatus(r.ID, api.RunCompleted)
		got, err := h.d.Cancel(h.ctx, "default", r.ID, "again")
		if err != nil || got.Status != api.RunCompleted {
			t.Errorf("cancel of the ended run = %s, %v", got.Status, err)
		}
	})
	t.Run("run on a lost node ends at once", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{NodeLostAfter: 10 * time.Second})
		h.addNode("n1", 1, 0)
		r := h.submit(1)
		// Lose the node without failing its run, as after a restart that
		// found the node unusable.
		if err := h.d.do(h.ctx, func(*txn) error { h.d.nodes["n1"].State = store.NodeUnusable; return nil }); err != nil {
			t.Fatal(err)
		}
		got, err := h.d.Cancel(h.ctx, "default", r.ID, "canceled by alice")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != api.RunCanceled || !strings.Contains(got.Error, "not reachable") {
			t.Errorf("cancel on a lost node: status %s error %q", got.Status, got.Error)
		}
	})
	t.Run("other workspace or unknown run", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{})
		r := h.submit(1)
		if _, err := h.d.Cancel(h.ctx, "other", r.ID, "x"); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("cancel from another workspace: %v, want ErrNotFound", err)
		}
		h.wantStatus(r.ID, api.RunQueued)
		if _, err := h.d.Cancel(h.ctx, "default", "run-nope", "x"); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("cancel of an unknown run: %v, want ErrNotFound", err)
		}
	})
}

func TestNodeLost(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{NodeLostAfter: 30 * time.Second})
	a := h.addNode("n1", 1, 0)
	r, queued := h.submit(1), h.submit(1)
	w, wake, err := h.d.Poll(h.ctx, "n1", nil, 0)
	if err != nil || len(w.Assignments) != 1 {
		t.Fatalf("poll = %+v, %v", w, err)
	}
	a.active[r.ID] = 1
	a.running(r.ID)

	// Polls keep the node alive.
	h.clock.Advance(20 * time.Second)
	a.poll()
	h.clock.Advance(20 * time.Second)
	h.checkNodes()
	if n := h.node("n1"); n.State != store.NodeRunning {
		t.Fatalf("node %s after 20s of silence, want running", n.State)
	}
	// Silent for longer than NodeLostAfter: unusable, its runs fail.
	h.clock.Advance(11 * time.Second)
	h.checkNodes()
	n := h.node("n1")
	if n.State != store.NodeUnusable || !strings.Contains(n.Reason, "no heartbeat for 31s") {
		t.Errorf("lost node: state %q reason %q", n.State, n.Reason)
	}
	got := h.wantStatus(r.ID, api.RunFailed)
	if got.StatusReason != "NodeLost" || !strings.Contains(got.Error, "n1") {
		t.Errorf("run on the lost node: reason %q error %q", got.StatusReason, got.Error)
	}
	// A poll held while the node was lost ends.
	select {
	case <-wake:
	default:
		t.Error("the held poll of the lost node was not woken")
	}
	// The freed core does not go to the queued run: the node is unusable.
	h.wantStatus(queued.ID, api.RunQueued)
	// The returning agent must say hello first.
	if _, _, err := h.d.Poll(h.ctx, "n1", a.refs(), 0); !errors.Is(err, api.ErrConflict) {
		t.Errorf("poll of a lost node: %v, want ErrConflict", err)
	}
	// Its old attempt is refused.
	if err := h.d.Report(h.ctx, "n1", api.AttemptRef{RunID: r.ID, Attempt: 1}, api.AttemptReport{Status: api.RunCompleted, ExitCode: new(0)}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("report after the node was lost: %v, want ErrConflict", err)
	}
	// A hello makes it usable again, and the queued run is placed.
	if n := a.hello(1, 0); n.State == store.NodeUnusable || n.Reason != "" {
		t.Errorf("after hello: state %q reason %q", n.State, n.Reason)
	}
	h.wantStatus(queued.ID, api.RunStarting)
	w = a.poll()
	if ids := assignmentIDs(w); !slices.Equal(ids, []string{queued.ID}) {
		t.Errorf("assignments %v", ids)
	}
	if diff := cmp.Diff([]api.AttemptRef{{RunID: r.ID, Attempt: 1}}, w.Stale); diff != "" {
		t.Errorf("the lost run's attempt should be stale (-want +got):\n%s", diff)
	}
}

func TestNodeNeverSaidHello(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{NodeLostAfter: 30 * time.Second})
	if err := h.d.AddNode(h.ctx, store.Node{ID: "n1", Workspace: "default", Compute: "local"}); err != nil {
		t.Fatal(err)
	}
	r := h.submit(1)
	h.clock.Advance(31 * time.Second)
	h.checkNodes()
	if n := h.node("n1"); n.State != store.NodeUnusable || n.Reason != "its agent never said hello" {
		t.Errorf("state %q reason %q", n.State, n.Reason)
	}
	h.wantStatus(r.ID, api.RunQueued)
}

func TestRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 8, 0)
	running, starting := h.submit(2), h.submit(2)
	big, small := h.submit(7), h.submit(1) // big blocks small: FIFO
	a.poll()
	a.running(running.ID)
	delete(a.active, starting.ID) // delivered, but the agent never got it
	h.wantStatus(starting.ID, api.RunStarting)
	h.wantStatus(big.ID, api.RunQueued)
	h.wantStatus(small.ID, api.RunQueued)
	// The agent had sent some lines of the Starting attempt already.
	var lines []store.LogLine
	for i := range 7 {
		lines = append(lines, store.LogLine{ASeq: int64(i + 1), Stream: "stdout", Time: h.clock.Now(), Text: "line"})
	}
	if _, err := h.st.AppendLogs(h.ctx, starting.ID, 1, 0, lines); err != nil {
		t.Fatal(err)
	}

	h.restart()

	// Placed runs keep their capacity: 8 - 2 - 2.
	if cores, _ := h.free("n1"); cores != 4 {
		t.Errorf("free cores after restart %g, want 4", cores)
	}
	if !h.d.NodeBusy(h.ctx, "n1") {
		t.Error("node not busy after restart")
	}
	// The Starting run is redelivered with the log ack; the Running run,
	// reported by the agent, is left alone.
	w := a.poll()
	if ids := assignmentIDs(w); !slices.Equal(ids, []string{starting.ID}) {
		t.Fatalf("assignments after restart %v, want the Starting run", ids)
	}
	if as := w.Assignments[0]; as.Attempt != 1 || as.LogAck != 7 {
		t.Errorf("redelivered attempt %d log ack %d, want attempt 1 ack 7", as.Attempt, as.LogAck)
	}
	if len(w.Stale) != 0 {
		t.Errorf("stale after restart: %v", w.Stale)
	}
	h.wantStatus(running.ID, api.RunRunning)

	// The queue kept its order: when the Running run ends, 6 cores are
	// free; the 1-core run behind the 7-core one still waits.
	a.exit(running.ID, 0)
	h.wantStatus(big.ID, api.RunQueued)
	h.wantStatus(small.ID, api.RunQueued)
	a.exit(starting.ID, 0)
	h.wantStatus(big.ID, api.RunStarting)
	h.wantStatus(small.ID, api.RunStarting)

	// Sequence numbers continue after the restart.
	if r := h.submit(1); r.Seq != small.Seq+1 {
		t.Errorf("seq after restart %d, want %d", r.Seq, small.Seq+1)
	}
}

func TestRestartFailsRunsTheAgentNoLongerHas(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 4, 0)
	r := h.submit(1)
	a.poll()
	a.running(r.ID)
	h.restart()
	a.active = map[string]int{} // the agent restarted too and lost the run
	if w := a.poll(); len(w.Assignments) != 0 {
		t.Errorf("assignments %v, want none", assignmentIDs(w))
	}
	if got := h.wantStatus(r.ID, api.RunFailed); got.StatusReason != "NodeLost" {
		t.Errorf("reason %q, want NodeLost", got.StatusReason)
	}
}

func TestIdempotentSubmit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	withKey := func(key, user string) store.Run {
		r := newRun(1)
		r.IdempotencyKey, r.CreatedBy = key, user
		return r
	}
	first := h.submitRun(withKey("k1", "alice"))
	if again := h.submitRun(withKey("k1", "alice")); again.ID != first.ID {
		t.Errorf("same key: %s, want %s", again.ID, first.ID)
	}
	if other := h.submitRun(withKey("k1", "bob")); other.ID == first.ID {
		t.Error("same key of another user returned the first user's run")
	}
	if other := h.submitRun(withKey("k2", "alice")); other.ID == first.ID {
		t.Error("another key returned the first run")
	}
	if a, b := h.submitRun(withKey("", "alice")), h.submitRun(withKey("", "alice")); a.ID == b.ID {
		t.Error("two submits without a key returned the same run")
	}
	// Also once the run ended (and after a restart).
	if _, err := h.d.Cancel(h.ctx, "default", first.ID, "x"); err != nil {
		t.Fatal(err)
	}
	h.restart()
	if again := h.submitRun(withKey("k1", "alice")); again.ID != first.ID || again.Status != api.RunCanceled {
		t.Errorf("same key after the run ended: %s %s, want %s Canceled", again.ID, again.Status, first.ID)
	}
}

func TestIdempotentSubmitConcurrent(t *testing.T) {
	t.Parallel()
	const n = 8
	for _, oneBatch := range []bool{false, true} {
		t.Run(fmt.Sprintf("one batch %v", oneBatch), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{})
			r := newRun(1)
			r.IdempotencyKey = "retry-me"
			var release func()
			if oneBatch {
				release = h.holdLoop() // every submit lands in the next batch
			}
			ids := make(chan string, n)
			errs := make(chan error, n)
			for range n {
				go func() {
					out, err := h.d.Submit(h.ctx, r)
					errs <- err
					ids <- out.ID
				}()
			}
			if oneBatch {
				h.waitQueued(n)
				release()
			}
			seen := map[string]bool{}
			for range n {
				if err := <-errs; err != nil {
					t.Errorf("Submit: %v", err)
				}
				seen[<-ids] = true
			}
			if len(seen) != 1 {
				t.Errorf("%d submits with one key made runs %v, want one", n, seen)
			}
			all, err := h.st.ListRuns(h.ctx, "default", store.RunFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 1 {
				t.Errorf("%d runs stored, want 1", len(all))
			}
		})
	}
}

func TestCheckFits(t *testing.T) {
	t.Parallel()
	type node struct {
		compute string
		cores   float64
		gpus    int
		hello   bool
	}
	tests := []struct {
		name    string
		nodes   []node
		compute string
		res     api.Resources
		wantErr bool
	}{
		{"no nodes yet", nil, "local", api.Resources{Cores: 64, MemoryGB: 512, GPUs: 8}, false},
		{"only a node that has not said hello", []node{{"local", 2, 0, false}}, "local", api.Resources{Cores: 64}, false},
		{"fits the node", []node{{"local", 4, 0, true}}, "local", api.Resources{Cores: 4, MemoryGB: 16}, false},
		{"fits the bigger node", []node{{"local", 2, 0, true}, {"local", 8, 0, true}}, "local", api.Resources{Cores: 6}, false},
		{"more cores than the biggest node", []node{{"local", 2, 0, true}, {"local", 4, 0, true}}, "local", api.Resources{Cores: 6}, true},
		{"more memory than any node", []node{{"local", 4, 0, true}}, "local", api.Resources{Cores: 1, MemoryGB: 17}, true},
		{"GPUs on a CPU node", []node{{"local", 4, 0, true}}, "local", api.Resources{Cores: 1, GPUs: 1}, true},
		{"GPUs on a GPU node", []node{{"local", 4, 2, true}}, "local", api.Resources{Cores: 1, GPUs: 2}, false},
		{"a big node of another target does not count", []node{{"local", 2, 0, true}, {"gpu", 64, 8, true}}, "local", api.Resources{Cores: 8}, true},
		{"target names compare case-insensitively", []node{{"local", 2, 0, true}}, "Local", api.Resources{Cores: 8}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{})
			for i, n := range tt.nodes {
				id := fmt.Sprintf("n%d", i)
				if n.hello {
					h.addNodeTarget(id, n.compute, n.cores, n.gpus)
				} else if err := h.d.AddNode(h.ctx, store.Node{ID: id, Workspace: "default", Compute: n.compute, TokenHash: "hash-" + id}); err != nil {
					t.Fatal(err)
				}
			}
			r := newRun(0)
			r.Compute, r.Resources = tt.compute, tt.res
			out, err := h.d.Submit(h.ctx, r)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Submit: %v", err)
				}
				if out.Status != api.RunQueued && out.Status != api.RunStarting {
					t.Errorf("status %s", out.Status)
				}
				return
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("Submit = %v, want ErrInvalid", err)
			}
			var ae *api.Error
			if errors.As(err, &ae); ae.Field != "resources" || !strings.Contains(ae.Message, "the largest") {
				t.Errorf("error field %q message %q", ae.Field, ae.Message)
			}
			if all, _ := h.st.ListRuns(h.ctx, "default", store.RunFilter{}); len(all) != 0 {
				t.Errorf("a refused run was stored: %v", all)
			}
		})
	}
}

// The loop checks heartbeats on its clock: moving the fake clock past
// NodeLostAfter is all it takes for the loop itself (no direct call, no
// sleep) to find the silent node lost and fail its run.
func TestLoopFindsALostNodeOnTheClock(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{NodeLostAfter: 30 * time.Second})
	a := h.addNode("n1", 1, 0)
	r := h.submit(1)
	a.poll()
	a.running(r.ID)
	h.clock.Advance(29 * time.Second)
	h.wantStatus(r.ID, api.RunRunning)
	h.clock.Advance(2 * time.Second)
	testenv.Eventually(t, 10*time.Second, "the loop to find the node lost", func() bool { return h.get(r.ID).Status == api.RunFailed })
	if got := h.get(r.ID); got.StatusReason != "NodeLost" {
		t.Errorf("reason %q, want NodeLost", got.StatusReason)
	}
}

// TestQueueKeepsSeqOrder: a target's queue stays in Seq order whatever
// the order runs join it (a requeued run goes back to its place, after a
// run of the same Seq), and removing a run that is not queued changes
// nothing.
func TestQueueKeepsSeqOrder(t *testing.T) {
	d := &Dispatcher{queues: map[string][]*store.Run{}}
	run := func(id string, seq int64) *store.Run {
		return &store.Run{Workspace: "ws", Seq: seq, Run: api.Run{ID: id, Compute: "c", Status: api.RunQueued}}
	}
	ids := func() []string {
		var out []string
		for _, r := range d.queues[store.Key("ws", "c")] {
			out = append(out, r.ID)
		}
		return out
	}
	a, b, c, dd, e, twin := run("a", 1), run("b", 2), run("c", 3), run("d", 4), run("e", 5), run("twin", 3)
	for _, r := range []*store.Run{a, b, dd, e} {
		d.enqueue(r)
	}
	d.enqueue(c)
	d.enqueue(twin)
	if got, want := ids(), []string{"a", "b", "c", "twin", "d", "e"}; !slices.Equal(got, want) {
		t.Fatalf("queue = %v, want %v", got, want)
	}
	before := d.queues[store.Key("ws", "c")]
	d.dequeue(run("gone", 3)) // same Seq, another run
	d.dequeue(run("x", 9))
	d.dequeue(twin)
	d.dequeue(a)
	if got, want := ids(), []string{"b", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Fatalf("after removals queue = %v, want %v", got, want)
	}
	if before[3] != twin {
		t.Fatalf("removing a run rewrote the slice a loop may still range over")
	}
	d.dequeue(c)
	d.enqueue(c) // requeued: back to its place
	if got, want := ids(), []string{"b", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Fatalf("after a requeue queue = %v, want %v", got, want)
	}
	for _, r := range []*store.Run{b, c, dd, e} {
		d.dequeue(r)
	}
	if _, ok := d.queues[store.Key("ws", "c")]; ok {
		t.Fatalf("an empty queue is kept: %v", ids())
	}
}

// TestNodeTokensFollowTheNodes: agents are authenticated from the loop's
// memory, so that memory must follow every change of a node's token: a
// node added is known by its token, a new token replaces the old one, a
// removed node is known no more, and a restarted dispatcher knows the
// nodes it loaded.
func TestNodeTokensFollowTheNodes(t *testing.T) {
	h := newHarness(t, Options{})
	known := func(hash string) string {
		n, ok := h.d.NodeByTokenHash(hash)
		if !ok {
			return ""
		}
		return n.ID + "@" + n.Workspace + "/" + n.Compute
	}
	h.addNode("n1", 4, 0)
	h.addNode("n2", 4, 0)
	if got := known("hash-n1"); got != "n1@default/local" {
		t.Fatalf("after AddNode, token of n1 → %q, want n1@default/local", got)
	}
	if err := h.d.AddNode(h.ctx, store.Node{ID: "n1", Workspace: "default", Compute: "local", TokenHash: "hash-n1-new"}); err != nil {
		t.Fatal(err)
	}
	if got, old := known("hash-n1-new"), known("hash-n1"); got != "n1@default/local" || old != "" {
		t.Fatalf("after a new token, new → %q, old → %q; want n1 and nothing", got, old)
	}
	if err := h.d.RemoveNode(h.ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if got := known("hash-n2"); got != "" {
		t.Fatalf("a removed node's token still names %q", got)
	}
	h.restart()
	if got, gone := known("hash-n1-new"), known("hash-n2"); got != "n1@default/local" || gone != "" {
		t.Fatalf("after a restart, n1 → %q, n2 → %q; want n1 and nothing", got, gone)
	}
}

// QueueHead counts a target's queue and gives why its first run waits.
func TestQueueHead(t *testing.T) {
	h := newHarness(t, Options{})
	if n, reason, err := h.d.QueueHead(h.ctx, "default", "local"); err != nil || n != 0 || reason != "" {
		t.Fatalf("empty queue: %d %q %v", n, reason, err)
	}
	first := h.submit(1)
	h.submit(1)
	if err := h.d.SetQueueReason(h.ctx, "default", "local", "waiting for a node"); err != nil {
		t.Fatal(err)
	}
	if n, reason, err := h.d.QueueHead(h.ctx, "default", "local"); err != nil || n != 2 || reason != "waiting for a node" {
		t.Fatalf("two queued: %d %q %v (first %s)", n, reason, err, first.ID)
	}
}
