package dispatch

import (
	"fmt"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
)

// preemptTimes runs a queued run on a fresh node and preempts that node,
// n times over.
func preemptTimes(t *testing.T, h *harness, id string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		a := h.addNode(fmt.Sprintf("n%d", i), 4, 0)
		if w := a.poll(); len(w.Assignments) != 1 || w.Assignments[0].Attempt != i {
			t.Fatalf("attempt %d: node n%d was given %+v", i, i, w.Assignments)
		}
		a.running(id)
		if err := h.d.NodeGone(h.ctx, a.id, true); err != nil {
			t.Fatal(err)
		}
	}
}

// A run preempted up to MaxPreemptions times is restarted each time and
// completes; one preempted once more ends Failed with reason Preempted and
// an error that says how often.
func TestPreemptionLimit(t *testing.T) {
	t.Parallel()
	const limit = 3 // the default
	t.Run("under the limit the run completes", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{})
		id := h.submit(1).ID
		preemptTimes(t, h, id, limit)
		r := h.wantStatus(id, api.RunQueued)
		if r.StatusReason != fmt.Sprintf("Preempted: restarting as attempt %d", limit+1) {
			t.Errorf("a requeued run says %q", r.StatusReason)
		}
		last := h.addNode("last", 4, 0)
		last.poll()
		last.running(id)
		last.exit(id, 0)
		r = h.wantStatus(id, api.RunCompleted)
		if len(r.Attempts) != limit+1 {
			t.Fatalf("%d attempts, want %d", len(r.Attempts), limit+1)
		}
		for i, a := range r.Attempts[:limit] {
			if a.Reason != "Preempted" || a.Status != api.RunFailed {
				t.Errorf("attempt %d: %s %s, want Failed Preempted", i+1, a.Status, a.Reason)
			}
		}
	})
	t.Run("over the limit the run fails and says why", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{})
		id := h.submit(1).ID
		preemptTimes(t, h, id, limit+1)
		r := h.wantStatus(id, api.RunFailed)
		if r.StatusReason != "Preempted" || !strings.Contains(r.Error, fmt.Sprintf("preempted %d times, the limit", limit+1)) || len(r.Attempts) != limit+1 {
			t.Fatalf("after %d preemptions: reason %q, error %q, %d attempts", limit+1, r.StatusReason, r.Error, len(r.Attempts))
		}
		if h.addNode("spare", 4, 0).poll().Assignments != nil {
			t.Error("a failed run was placed again")
		}
	})
	t.Run("the limit is an option", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{MaxPreemptions: 1})
		id := h.submit(1).ID
		preemptTimes(t, h, id, 2)
		if r := h.wantStatus(id, api.RunFailed); r.StatusReason != "Preempted" || len(r.Attempts) != 2 {
			t.Fatalf("MaxPreemptions 1, preempted twice: %s %q, %d attempts", r.Status, r.StatusReason, len(r.Attempts))
		}
	})
}
