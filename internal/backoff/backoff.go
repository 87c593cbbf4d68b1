// Package backoff spaces out retries: a delay that starts small, doubles
// after each failure up to a cap, and starts small again after a success.
// Every retry loop in Paddock (the agent's calls to the server, following
// a run's log, waiting for a target, restarting the local agent) uses it.
package backoff

import (
	"context"
	"time"
)

// Backoff is the delay between tries. The zero value is not useful; make
// one with New. It is not safe for concurrent use: give each loop its own.
type Backoff struct {
	min, max time.Duration
	next     time.Duration
}

// New returns a backoff that waits min first, then twice as long after each
// failure, never more than max.
func New(min, max time.Duration) *Backoff {
	return &Backoff{min: min, max: max, next: min}
}

// Reset starts over from the smallest delay, after a success.
func (b *Backoff) Reset() { b.next = b.min }

// Next returns the delay to wait now and doubles the one after.
func (b *Backoff) Next() time.Duration {
	d := b.next
	b.next = min(b.next*2, b.max)
	return d
}

// Wait waits the next delay. It reports false, at once, when ctx ends first.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Retry calls f until it returns nil or an error final says a retry would
// not change, waiting the backoff's delays between tries. It returns f's
// last error, or ctx's when ctx ends first.
func (b *Backoff) Retry(ctx context.Context, f func() error, final func(error) bool) error {
	for {
		err := f()
		if err == nil || final(err) {
			return err
		}
		if !b.Wait(ctx) {
			return ctx.Err()
		}
	}
}
