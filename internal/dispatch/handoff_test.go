package dispatch

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/testenv"
)

// An operation whose caller stopped waiting before the loop took it is
// not run: the caller was told it failed, and the operation must not
// write into the caller's variables after it returned (the e2e tests'
// race-built server caught a poll that did).
func TestAbandonedOperationDoesNotRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.stopLoop() // ops queue up until the loop runs again

	var ran atomic.Bool
	ctx, cancel := context.WithCancel(h.ctx)
	errc := make(chan error, 1)
	go func() { errc <- h.d.do(ctx, func(*txn) error { ran.Store(true); return nil }) }()
	testenv.Eventually(t, 10*time.Second, "the operation to be queued", func() bool { return len(h.d.ops) > 0 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("do after its caller gave up: %v, want context.Canceled", err)
	}

	testenv.Go(t, h.d.Run)
	if err := h.d.do(h.ctx, func(*txn) error { return nil }); err != nil { // the loop is past the abandoned one
		t.Fatal(err)
	}
	if ran.Load() {
		t.Fatal("an abandoned operation ran")
	}
	// One the loop takes runs, and its caller gets its result.
	if err := h.d.do(h.ctx, func(*txn) error { ran.Store(true); return nil }); err != nil || !ran.Load() {
		t.Fatalf("a normal operation: ran %v, %v", ran.Load(), err)
	}
}

// A run handed out of the loop (Submit's answer, which the server encodes
// while the run goes on) shares nothing the loop changes: the e2e tests'
// race-built server caught the first attempt's start being written while
// the submit's answer was encoded.
func TestRunsHandedOutAreCopies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 4, 0)
	run := h.submit(1) // placed at once: its first attempt exists
	if len(run.Attempts) != 1 {
		t.Fatalf("submitted to a free node: %d attempts, want 1 (placed)", len(run.Attempts))
	}
	read := make(chan *time.Time)
	go func() {
		var last *time.Time
		for range 1000 {
			last = run.Attempts[0].StartedAt // what encoding the answer reads
		}
		read <- last
	}()
	a.poll()
	a.running(run.ID)
	if started := <-read; started != nil {
		t.Errorf("the copy handed out saw the loop's later change: started at %v", started)
	}
	if cur := h.get(run.ID); cur.Attempts[0].StartedAt == nil {
		t.Error("the run itself did not record its start")
	}
}
