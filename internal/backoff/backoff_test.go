package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelaysDoubleUpToTheCapAndReset(t *testing.T) {
	b := New(10*time.Millisecond, 50*time.Millisecond)
	want := []time.Duration{10, 20, 40, 50, 50}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("delay %d = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 10*time.Millisecond {
		t.Fatalf("after Reset the delay is %v, want 10ms", got)
	}
}

func TestWaitReturnsAtOnceWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if New(time.Hour, time.Hour).Wait(ctx) {
		t.Fatal("Wait reported true after the context ended")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Wait took %v with an ended context", d)
	}
	if !New(time.Millisecond, time.Millisecond).Wait(context.Background()) {
		t.Fatal("Wait reported false with a live context")
	}
}

// Retry tries again after a passing error, stops at the first success or
// final error (returning it), and returns the context's error when it ends.
func TestRetryStopsAtSuccessOrAFinalError(t *testing.T) {
	final := errors.New("final")
	for _, tc := range []struct {
		name  string
		errs  []error
		want  error
		calls int
	}{
		{"succeeds after two failures", []error{errors.New("a"), errors.New("b"), nil}, nil, 3},
		{"stops at a final error", []error{errors.New("a"), final, nil}, final, 2},
	} {
		calls := 0
		err := New(time.Millisecond, time.Millisecond).Retry(context.Background(), func() error {
			calls++
			return tc.errs[calls-1]
		}, func(err error) bool { return err == final })
		if err != tc.want || calls != tc.calls {
			t.Errorf("%s: %v after %d calls, want %v after %d", tc.name, err, calls, tc.want, tc.calls)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(time.Hour, time.Hour).Retry(ctx, func() error { return errors.New("again") }, func(error) bool { return false }); err != context.Canceled {
		t.Errorf("with an ended context: %v, want context.Canceled", err)
	}
}
