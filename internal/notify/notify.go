// Package notify carries "something about this key changed" from the
// parts that change state to the loops that act on it. Producers publish
// a key (a target's store.Key) on a topic; controllers subscribe to the
// topics they need, next to their own code (a Watch method), instead of
// callbacks wired from afar. Delivery is synchronous and keys only, never
// events: a subscriber enqueues the key and reads the real state when it
// gets to it, so a key published twice costs nothing.
package notify

import "sync"

// Topic names what changed.
type Topic string

// The topics.
const (
	// Targets: a user changed a target (create, update, delete, start,
	// stop, restart, a quota that limits it).
	Targets Topic = "targets"
	// Provisioned: a target's provisioning state changed (Creating →
	// Succeeded, ...; gone after Deleting).
	Provisioned Topic = "provisioned"
	// Demand: a target's queue or nodes changed (a run queued, placed or
	// ended; a node came, went or changed state).
	Demand Topic = "demand"
	// RunEnded: a run on the target ended.
	RunEnded Topic = "run-ended"
)

// Notifier delivers published keys to the topic's subscribers. The zero
// value is ready; a nil *Notifier drops everything (tests that need no
// loops).
type Notifier struct {
	mu   sync.RWMutex
	subs map[Topic][]func(key string)
}

// Subscribe calls f with every key later published on t. f runs in the
// publisher's goroutine: it must not block (enqueue, or start a
// goroutine).
func (n *Notifier) Subscribe(t Topic, f func(key string)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.subs == nil {
		n.subs = map[Topic][]func(string){}
	}
	n.subs[t] = append(n.subs[t], f)
}

// Publish tells t's subscribers that key changed.
func (n *Notifier) Publish(t Topic, key string) {
	if n == nil {
		return
	}
	n.mu.RLock()
	subs := n.subs[t]
	n.mu.RUnlock()
	for _, f := range subs {
		f(key)
	}
}
