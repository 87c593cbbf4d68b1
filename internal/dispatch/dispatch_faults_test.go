package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// holdLoop blocks the loop until the returned release is called, so the
// ops sent meanwhile share the next batch.
func (h *harness) holdLoop() (release func()) {
	h.t.Helper()
	started, gate, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- h.d.do(h.ctx, func(*txn) error { close(started); <-gate; return nil })
	}()
	<-started
	return func() {
		close(gate)
		if err := <-done; err != nil {
			h.t.Errorf("held op: %v", err)
		}
	}
}

// waitQueued waits until n ops wait for the loop.
func (h *harness) waitQueued(n int) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(h.d.ops) < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("only %d ops queued, want %d", len(h.d.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A retried submit whose request was abandoned (client timeout) still runs
// in the loop with its canceled context. The idempotency lookup then fails,
// and that failure must not be taken for "no such run": a second run with the
// same key makes the whole batch's commit fail, and every other caller in
// that batch gets an error.
func TestIdempotentSubmitWithCanceledContextDoesNotPoisonTheBatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	keyed := newRun(1)
	keyed.IdempotencyKey = "k1"
	first := h.submitRun(keyed)

	release := h.holdLoop()
	retryCtx, cancelRetry := context.WithCancel(h.ctx)
	retried := make(chan error, 1)
	go func() { _, err := h.d.Submit(retryCtx, keyed); retried <- err }()
	h.waitQueued(1)
	other := newRun(1)
	other.CreatedBy = "bob"
	bob := make(chan error, 1)
	go func() { _, err := h.d.Submit(h.ctx, other); bob <- err }()
	h.waitQueued(2)
	cancelRetry() // the client gave up on the retry
	<-retried
	release()

	if err := <-bob; err != nil {
		t.Errorf("another user's submit in the same batch failed: %v", err)
	}
	all, err := h.st.ListRuns(h.ctx, "default", store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Errorf("%d runs stored, want 2 (alice's first and bob's)", len(all))
	}
	h.wantStatus(first.ID, api.RunQueued)
}

// An agent can ship some lines of an attempt before its Running report
// lands (the shipper starts with the attempt). If that agent restarts, the
// Starting attempt is redelivered; unless the assignment carries the stored
// log ack, the new execution's first lines reuse numbers the store already
// has and are dropped as duplicates.
func TestRedeliveredStartingRunCarriesLogAck(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 4, 0)
	r := h.submit(1)
	a.poll()
	var lines []store.LogLine
	for i := range 3 {
		lines = append(lines, store.LogLine{ASeq: int64(i + 1), Stream: "stdout", Time: h.clock.Now(), Text: "early"})
	}
	if _, err := h.st.AppendLogs(h.ctx, r.ID, 1, 0, lines); err != nil {
		t.Fatal(err)
	}
	a.active = map[string]int{} // the agent restarted before reporting Running
	w := a.poll()
	if len(w.Assignments) != 1 {
		t.Fatalf("assignments %v, want the Starting run redelivered", assignmentIDs(w))
	}
	if ack := w.Assignments[0].LogAck; ack != 3 {
		t.Errorf("redelivered LogAck %d, want 3 (the lines the store has)", ack)
	}
}
