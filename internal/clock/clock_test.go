package clock

import (
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFakeTimersFireInOrderWhenDue(t *testing.T) {
	f := NewFake(t0)
	late, early := f.NewTimer(2*time.Second), f.NewTimer(time.Second)
	f.Advance(999 * time.Millisecond)
	select {
	case <-early.C():
		t.Fatal("fired before its time")
	default:
	}
	f.Advance(time.Millisecond)
	if got := <-early.C(); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("fired at %v, want its own time", got)
	}
	if late.Stop() != true || late.Stop() != false {
		t.Error("Stop should report the first stop only")
	}
	f.Advance(time.Hour)
	select {
	case <-late.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	if !f.Now().Equal(t0.Add(time.Hour + time.Second)) {
		t.Errorf("now %v", f.Now())
	}
}

func TestFakeTickerAndAfterFunc(t *testing.T) {
	f := NewFake(t0)
	tick := f.NewTicker(time.Second)
	var calls atomic.Int32
	done := make(chan struct{}, 1)
	f.AfterFunc(1500*time.Millisecond, func() { calls.Add(1); done <- struct{}{} })
	f.Advance(time.Second)
	<-tick.C()
	f.Advance(time.Second) // 2 s: the call (1.5 s) and a tick
	<-done
	<-tick.C()
	if calls.Load() != 1 {
		t.Errorf("AfterFunc ran %d times", calls.Load())
	}
	tick.Stop()
	f.Advance(10 * time.Second)
	select {
	case <-tick.C():
		t.Fatal("a stopped ticker ticked")
	default:
	}
	if f.Waiters() != 0 {
		t.Errorf("%d waiters left", f.Waiters())
	}
}

func TestWaitForWaiters(t *testing.T) {
	f := NewFake(t0)
	go func() {
		time.Sleep(10 * time.Millisecond)
		f.NewTimer(time.Minute)
	}()
	if !f.WaitForWaiters(1, 5*time.Second) {
		t.Fatal("the timer was not seen")
	}
	if f.WaitForWaiters(2, 20*time.Millisecond) {
		t.Fatal("a second timer that was never made")
	}
}

func TestRealIsUTC(t *testing.T) {
	if Real.Now().Location() != time.UTC || Or(nil) != Real {
		t.Error("Real should tell UTC time and be the default")
	}
}
