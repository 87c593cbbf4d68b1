package backoff

import (
	"context"
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
