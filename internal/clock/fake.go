package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a clock that moves only when told to (Advance, Set). Timers,
// tickers and delayed calls whose time comes are fired by the move, in
// time order, before it returns: a channel timer gets its tick (buffered,
// one), a delayed call runs in its own goroutine.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
	seq     int
	added   chan struct{} // closed and renewed when a waiter is added
}

// NewFake returns a fake clock showing t.
func NewFake(t time.Time) *Fake {
	return &Fake{now: t, added: make(chan struct{})}
}

type fakeWaiter struct {
	f      *Fake
	when   time.Time
	every  time.Duration // tickers
	ch     chan time.Time
	fn     func()
	seq    int
	active bool
}

// Now implements Clock.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Since implements Clock.
func (f *Fake) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

// NewTimer implements Clock.
func (f *Fake) NewTimer(d time.Duration) Timer {
	return f.add(&fakeWaiter{ch: make(chan time.Time, 1)}, d)
}

// NewTicker implements Clock.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive ticker interval")
	}
	return fakeTicker{f.add(&fakeWaiter{ch: make(chan time.Time, 1), every: d}, d)}
}

type fakeTicker struct{ *fakeWaiter }

func (t fakeTicker) Stop() { t.fakeWaiter.Stop() }

// AfterFunc implements Clock.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	return f.add(&fakeWaiter{fn: fn}, d)
}

func (f *Fake) add(w *fakeWaiter, d time.Duration) *fakeWaiter {
	f.mu.Lock()
	w.f, w.when, w.active = f, f.now.Add(d), true
	f.seq++
	w.seq = f.seq
	f.waiters = append(f.waiters, w)
	close(f.added)
	f.added = make(chan struct{})
	f.mu.Unlock()
	if d <= 0 {
		f.Advance(0)
	}
	return w
}

// C implements Timer and Ticker.
func (w *fakeWaiter) C() <-chan time.Time { return w.ch }

// Stop implements Timer and Ticker.
func (w *fakeWaiter) Stop() bool {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	was := w.active
	w.active = false
	return was
}

// Advance moves the clock d forward, firing what comes due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.setLocked(f.now.Add(d))
}

// Set moves the clock to t (not backwards), firing what comes due.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	if t.Before(f.now) {
		t = f.now
	}
	f.setLocked(t)
}

// setLocked fires due waiters one at a time, in time order, with the clock
// showing each one's time; it unlocks f.
func (f *Fake) setLocked(target time.Time) {
	for {
		var due *fakeWaiter
		live := f.waiters[:0]
		for _, w := range f.waiters {
			if w.active {
				live = append(live, w)
			}
		}
		f.waiters = live
		sort.SliceStable(f.waiters, func(i, j int) bool {
			a, b := f.waiters[i], f.waiters[j]
			return a.when.Before(b.when) || a.when.Equal(b.when) && a.seq < b.seq
		})
		if len(f.waiters) > 0 && !f.waiters[0].when.After(target) {
			due = f.waiters[0]
		}
		if due == nil {
			f.now = target
			f.mu.Unlock()
			return
		}
		if due.when.After(f.now) {
			f.now = due.when
		}
		if due.every > 0 {
			due.when = due.when.Add(due.every)
		} else {
			due.active = false
		}
		now := f.now
		f.mu.Unlock()
		if due.ch != nil {
			select {
			case due.ch <- now:
			default: // as time.Ticker: a slow reader misses ticks
			}
		} else {
			go due.fn()
		}
		f.mu.Lock()
	}
}

// Waiters is how many timers, tickers and delayed calls are pending.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, w := range f.waiters {
		if w.active {
			n++
		}
	}
	return n
}

// WaitForWaiters blocks until at least n timers, tickers or delayed calls
// are pending, or the timeout (real time) passes; it reports whether they
// are. Tests use it to advance only once a loop has armed its timer.
func (f *Fake) WaitForWaiters(n int, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		f.mu.Lock()
		count := 0
		for _, w := range f.waiters {
			if w.active {
				count++
			}
		}
		added := f.added
		f.mu.Unlock()
		if count >= n {
			return true
		}
		select {
		case <-added:
		case <-deadline:
			return false
		}
	}
}
