// Package reconcile runs level-based reconcile loops: a keyed queue whose
// workers call a function with a key (never an event), so the function
// reads the real state each time and converges to it.
//
// The queue never runs the same key twice at once; a key added while it is
// being reconciled runs once more afterwards; a key added many times while
// waiting runs once. A failed reconcile is retried with exponential backoff
// unless the error is marked Terminal; a reconcile that wants to look again
// later (a timer of its own: an idle deadline, a backend to poll) says so
// in its Result instead of arming a timer itself. Time is the queue's
// Clock, so tests drive backoff and requeues without sleeping.
package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/internal/clock"
)

// Func reconciles one key.
type Func func(ctx context.Context, key string) (Result, error)

// Result says when to reconcile a key again without being asked: at once
// (Requeue: the pass changed what the next one acts on), or after
// RequeueAfter (0: only when asked).
type Result struct {
	Requeue      bool
	RequeueAfter time.Duration
}

// Again is a Result that reconciles the key once more at once.
var Again = Result{Requeue: true}

// After is a Result that looks again after d.
func After(d time.Duration) Result { return Result{RequeueAfter: d} }

type terminalError struct{ error }

func (t terminalError) Unwrap() error { return t.error }

// Terminal marks err as not worth retrying.
func Terminal(err error) error { return terminalError{err} }

// Queue is a keyed work queue with workers.
type Queue struct {
	name string
	fn   Func
	log  *slog.Logger

	mu       sync.Mutex
	cond     *sync.Cond
	order    []string
	queued   map[string]bool
	active   map[string]bool
	dirty    map[string]bool
	failures map[string]int
	closed   bool

	// MinBackoff and MaxBackoff bound the retry delay after failures.
	MinBackoff, MaxBackoff time.Duration
	// Clock times backoff and requeues (default clock.Real).
	Clock clock.Clock
}

// New returns a queue that calls fn; start it with Run.
func New(name string, fn Func, log *slog.Logger) *Queue {
	q := &Queue{
		name: name, fn: fn, log: log,
		queued: map[string]bool{}, active: map[string]bool{}, dirty: map[string]bool{}, failures: map[string]int{},
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 30 * time.Second,
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add schedules key for reconciling.
func (q *Queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed || q.queued[key]:
	case q.active[key]:
		q.dirty[key] = true
	default:
		q.queued[key] = true
		q.order = append(q.order, key)
		q.cond.Signal()
	}
}

// AddAfter schedules key after d.
func (q *Queue) AddAfter(key string, d time.Duration) {
	clock.Or(q.Clock).AfterFunc(d, func() { q.Add(key) })
}

func (q *Queue) get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	key := q.order[0]
	q.order = q.order[1:]
	delete(q.queued, key)
	q.active[key] = true
	return key, true
}

func (q *Queue) done(key string, err error) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.active, key)
	var retry time.Duration
	var term terminalError
	if err != nil && !errors.As(err, &term) {
		q.failures[key]++
		retry = q.MinBackoff << min(q.failures[key]-1, 16)
		if retry > q.MaxBackoff || retry <= 0 {
			retry = q.MaxBackoff
		}
	} else {
		delete(q.failures, key)
	}
	if q.dirty[key] && !q.closed {
		delete(q.dirty, key)
		q.queued[key] = true
		q.order = append(q.order, key)
		q.cond.Signal()
	}
	return retry
}

// Run starts workers and blocks until ctx ends; then it waits for the
// reconciles in progress to return.
func (q *Queue) Run(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key, ok := q.get()
				if !ok {
					return
				}
				res, err := q.fn(ctx, key)
				if err != nil && ctx.Err() == nil {
					q.log.Warn("reconcile failed", "loop", q.name, "key", key, "err", err)
				}
				retry := q.done(key, err)
				switch {
				case ctx.Err() != nil:
				case err == nil && res.Requeue:
					q.Add(key)
				case err == nil && res.RequeueAfter > 0:
					q.AddAfter(key, res.RequeueAfter)
				case retry > 0:
					q.AddAfter(key, retry)
				}
			}
		}()
	}
	<-ctx.Done()
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	wg.Wait()
}
