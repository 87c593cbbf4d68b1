package reconcile

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/clock"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSameKeyNeverConcurrentAndRerunWhenDirty(t *testing.T) {
	var running, maxRunning, calls atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	q := New("t", func(ctx context.Context, key string) (Result, error) {
		n := running.Add(1)
		if n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		calls.Add(1)
		started <- struct{}{}
		<-release
		running.Add(-1)
		return Result{}, nil
	}, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx, 4); close(done) }()
	q.Add("a")
	<-started
	q.Add("a") // while active: must run once more afterwards
	q.Add("a") // collapses into the same rerun
	release <- struct{}{}
	<-started
	release <- struct{}{}
	deadline := time.After(2 * time.Second)
	for calls.Load() != 2 || running.Load() != 0 {
		select {
		case <-deadline:
			t.Fatalf("calls = %d, want 2", calls.Load())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if maxRunning.Load() != 1 {
		t.Fatalf("same key ran %d times at once", maxRunning.Load())
	}
	cancel()
	<-done
}

// Failures are retried after MinBackoff, doubling, on the queue's clock;
// a terminal error is not retried. Nothing here sleeps: the fake clock is
// moved once the queue has armed its retry timer.
func TestRetryWithBackoffUntilSuccessAndTerminalStops(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	ran := make(chan string, 10)
	q := New("t", func(ctx context.Context, key string) (Result, error) {
		mu.Lock()
		calls[key]++
		n := calls[key]
		mu.Unlock()
		defer func() { ran <- key }()
		switch {
		case key == "term":
			return Result{}, Terminal(errors.New("no"))
		case n < 3:
			return Result{}, errors.New("transient")
		}
		return Result{}, nil
	}, quiet())
	fake := clock.NewFake(time.Unix(0, 0))
	q.Clock, q.MinBackoff = fake, time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx, 2)
	q.Add("flaky")
	q.Add("term")
	wait := func(key string) {
		t.Helper()
		select {
		case got := <-ran:
			if got != key {
				t.Fatalf("ran %s, want %s", got, key)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not run", key)
		}
	}
	got := []string{<-ran, <-ran} // the first pass of both, in either order
	if !slices.Contains(got, "flaky") || !slices.Contains(got, "term") {
		t.Fatalf("first passes %v", got)
	}
	// The retry is armed for 1 s: not before.
	if !fake.WaitForWaiters(1, 5*time.Second) {
		t.Fatal("no retry armed")
	}
	fake.Advance(999 * time.Millisecond)
	select {
	case key := <-ran:
		t.Fatalf("%s ran before its backoff", key)
	case <-time.After(20 * time.Millisecond):
	}
	fake.Advance(time.Millisecond)
	wait("flaky")
	// The second failure doubles the backoff: 2 s.
	if !fake.WaitForWaiters(1, 5*time.Second) {
		t.Fatal("no second retry armed")
	}
	fake.Advance(1999 * time.Millisecond)
	select {
	case key := <-ran:
		t.Fatalf("%s ran before its doubled backoff", key)
	case <-time.After(20 * time.Millisecond):
	}
	fake.Advance(time.Millisecond)
	wait("flaky")
	mu.Lock()
	defer mu.Unlock()
	if calls["flaky"] != 3 || calls["term"] != 1 || fake.Waiters() != 0 {
		t.Fatalf("calls = %v (want flaky 3, term 1), %d timers left", calls, fake.Waiters())
	}
}

// A reconcile that asks to look again after d is run again then, and only
// then.
func TestRequeueAfter(t *testing.T) {
	ran := make(chan time.Time, 10)
	fake := clock.NewFake(time.Unix(0, 0))
	var n atomic.Int32
	q := New("t", func(ctx context.Context, key string) (Result, error) {
		ran <- fake.Now()
		if n.Add(1) < 3 {
			return After(time.Minute), nil
		}
		return Result{}, nil
	}, quiet())
	q.Clock = fake
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx, 1)
	q.Add("k")
	for i := range 3 {
		select {
		case at := <-ran:
			if want := time.Unix(0, 0).Add(time.Duration(i) * time.Minute); !at.Equal(want) {
				t.Fatalf("pass %d at %v, want %v", i, at, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("pass %d did not happen", i)
		}
		if i < 2 {
			if !fake.WaitForWaiters(1, 5*time.Second) {
				t.Fatal("no requeue armed")
			}
			fake.Advance(time.Minute)
		}
	}
	if fake.WaitForWaiters(1, 20*time.Millisecond) {
		t.Error("a requeue was armed after a pass that asked for none")
	}
}
