package dispatch

import (
	"errors"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/nodes"
)

// gangOnTwo places a 2-node gang run (2 cores, 1 GPU per node) on n1 and n2
// (4 cores, 2 GPUs each) and has both parts running.
func gangOnTwo(t *testing.T) (*harness, *agent, *agent, string) {
	h := newHarness(t, Options{})
	n1 := h.addNode("n1", 4, 2)
	n2 := h.addNode("n2", 4, 2)
	r := newRun(2)
	r.NodeCount = 2
	r.Resources.GPUs = 1
	run := h.submitRun(r)
	n1.poll()
	n2.poll()
	n1.running(run.ID)
	n2.running(run.ID)
	return h, n1, n2, run.ID
}

// After a gang run is requeued because one node was preempted, the run no
// longer holds anything; cancelling it while queued must not release its
// old nodes' capacity a second time.
func TestReviewGangRequeueThenCancelDoubleReleases(t *testing.T) {
	h, _, _, id := gangOnTwo(t)
	if err := h.d.NodeGone(h.ctx, "n1", true); err != nil {
		t.Fatal(err)
	}
	h.wantStatus(id, api.RunQueued)
	if cores, gpus := h.free("n2"); cores != 4 || len(gpus) != 2 {
		t.Fatalf("after requeue n2 free = %g cores, GPUs %v; want 4, [0 1]", cores, gpus)
	}
	if _, err := h.d.Cancel(h.ctx, "default", id, "user"); err != nil {
		t.Fatal(err)
	}
	h.wantStatus(id, api.RunCanceled)
	if cores, gpus := h.free("n2"); cores != 4 || len(gpus) != 2 {
		t.Fatalf("after cancel of the queued run n2 free = %g cores, GPUs %v; want 4 cores, [0 1] (double release)", cores, gpus)
	}
}

// The surviving rank of a preempted gang keeps the old attempt; the server
// must tell it that attempt is stale and must not accept its reports.
func TestReviewGangRequeueSurvivorIsNotFenced(t *testing.T) {
	h, _, n2, id := gangOnTwo(t)
	if err := h.d.NodeGone(h.ctx, "n1", true); err != nil {
		t.Fatal(err)
	}
	h.wantStatus(id, api.RunQueued)
	w := n2.poll()
	if len(w.Stale) == 0 {
		t.Errorf("survivor n2 still runs attempt 1 of a requeued run, but Poll did not report it stale")
	}
	// The survivor's rank dies (its peer is gone) and reports it.
	one := 1
	err := h.d.Report(h.ctx, "n2", api.AttemptRef{RunID: id, Attempt: 1}, api.AttemptReport{Status: api.RunFailed, ExitCode: &one, Error: "NCCL peer lost"})
	if !errors.Is(err, api.ErrConflict) {
		t.Errorf("report of the preempted attempt: err %v, want a conflict", err)
	}
	// A third node arrives; the run restarts as attempt 2 and must not be
	// cancelled by the old attempt's failure.
	n3 := h.addNode("n3", 4, 2)
	n2.active = map[string]int{}
	w2 := n2.poll()
	n3.poll()
	r := h.get(id)
	if r.Attempt != 2 || r.CancelRequested != "" || len(w2.Cancel) > 0 {
		t.Fatalf("attempt %d, cancel_requested %q, cancel orders %v: the new attempt inherits the old attempt's failure", r.Attempt, r.CancelRequested, w2.Cancel)
	}
}

// A restart forgets when idle nodes became idle (Load leaves idleSince zero
// and agents do not say hello again), so the autoscaler deletes them at once
// instead of after idle_seconds_before_scaledown.
func TestReviewIdleTimerLostOnRestart(t *testing.T) {
	h := newHarness(t, Options{})
	h.addNode("n1", 4, 0)
	cl := nodes.Cluster{Key: "default/local", MinNodes: 0, MaxNodes: 4, IdleAfter: 10 * time.Minute, NodeCores: 4, NodeMemGB: 16, QuotaNodes: -1}
	view, queue, err := h.d.ClusterView(h.ctx, "default", "local")
	if err != nil {
		t.Fatal(err)
	}
	if dec := nodes.Decide(cl, view, queue, h.clock.Now()); len(dec.Delete) != 0 {
		t.Fatalf("before restart: a node idle for 0s is deleted: %+v", dec)
	}
	h.restart()
	h.clock.Advance(time.Second)
	view, queue, err = h.d.ClusterView(h.ctx, "default", "local")
	if err != nil {
		t.Fatal(err)
	}
	if dec := nodes.Decide(cl, view, queue, h.clock.Now()); len(dec.Delete) != 0 {
		t.Fatalf("after restart: a node idle for 1s is deleted (IdleSince %v): %+v", view[0].IdleSince, dec)
	}
}
