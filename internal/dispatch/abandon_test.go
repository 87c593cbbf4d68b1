package dispatch

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
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
	deadline := time.Now().Add(10 * time.Second)
	for len(h.d.ops) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the operation was never queued")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("do after its caller gave up: %v, want context.Canceled", err)
	}

	loop, stop := context.WithCancel(h.ctx)
	done := make(chan struct{})
	go func() { h.d.Run(loop); close(done) }()
	h.stopLoop = func() { stop(); <-done }
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
