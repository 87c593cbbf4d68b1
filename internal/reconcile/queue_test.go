package reconcile

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSameKeyNeverConcurrentAndRerunWhenDirty(t *testing.T) {
	var running, maxRunning, calls atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	q := New("t", func(ctx context.Context, key string) error {
		n := running.Add(1)
		if n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		calls.Add(1)
		started <- struct{}{}
		<-release
		running.Add(-1)
		return nil
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

func TestRetryWithBackoffUntilSuccessAndTerminalStops(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	ok := make(chan string, 2)
	q := New("t", func(ctx context.Context, key string) error {
		mu.Lock()
		calls[key]++
		n := calls[key]
		mu.Unlock()
		switch {
		case key == "term":
			return Terminal(errors.New("no"))
		case n < 3:
			return errors.New("transient")
		}
		ok <- key
		return nil
	}, quiet())
	q.MinBackoff = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx, 2)
	q.Add("flaky")
	q.Add("term")
	select {
	case <-ok:
	case <-time.After(2 * time.Second):
		t.Fatal("flaky key never succeeded")
	}
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if calls["flaky"] != 3 || calls["term"] != 1 {
		t.Fatalf("calls = %v, want flaky 3, term 1", calls)
	}
}
