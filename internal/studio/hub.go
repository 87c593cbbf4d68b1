package studio

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/dispatch"
	"github.com/paddock-ml/paddock/internal/notify"
	"github.com/paddock-ml/paddock/internal/store"
)

// sampleEvery bounds how often the hub reads node counts: changes within
// it are taken together, so a cluster of thousands of nodes costs a few
// reads a second, not one per node.
const sampleEvery = 200 * time.Millisecond

// historyLen is how many node-count changes a target's timeline keeps.
const historyLen = 300

// counts are a target's nodes by state, as the studio shows them.
type counts struct {
	Idle, Running, Preparing, Leaving, Unusable, Preempted int
}

// Total is every node the target has.
func (c counts) Total() int {
	return c.Idle + c.Running + c.Preparing + c.Leaving + c.Unusable + c.Preempted
}

// add counts a node in its state.
func (c *counts) add(state string) {
	switch state {
	case store.NodeIdle:
		c.Idle++
	case store.NodeRunning:
		c.Running++
	case store.NodeStarting:
		c.Preparing++
	case store.NodeLeaving:
		c.Leaving++
	case store.NodeUnusable:
		c.Unusable++
	case store.NodePreempted:
		c.Preempted++
	}
}

// sample is a target's node counts from a moment on.
type sample struct {
	At time.Time
	counts
}

// hub turns the notifier's "target changed" keys into what live pages
// wait for: it reads the changed targets' node counts (at most every
// sampleEvery), keeps the recent history of them (the timeline) of each
// target whose page was opened, and then wakes the pages watching the
// target or its workspace.
type hub struct {
	disp  *dispatch.Dispatcher
	clock clock.Clock

	mu      sync.Mutex
	dirty   map[string]bool          // target keys changed since the last sample
	waiters map[string]chan struct{} // by target key, or "ws/" for any of the workspace
	hist    map[string][]sample      // by target key
	// followed are the target keys whose counts are sampled (a page of
	// them was opened since the server started).
	followed map[string]bool
	kick     chan struct{}
}

func newHub(d *dispatch.Dispatcher, c clock.Clock) *hub {
	return &hub{disp: d, clock: c, dirty: map[string]bool{}, waiters: map[string]chan struct{}{},
		hist: map[string][]sample{}, followed: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// watch subscribes the hub to what changes a target: its nodes and queue
// (Demand), its provisioning state (Provisioned), a user's change to it
// (Targets).
func (h *hub) watch(n *notify.Notifier) {
	if n == nil {
		return
	}
	for _, t := range []notify.Topic{notify.Demand, notify.Provisioned, notify.Targets} {
		n.Subscribe(t, h.changed)
	}
}

// changed marks a target to be sampled; it never blocks (the notifier
// calls it from the publisher's goroutine).
func (h *hub) changed(key string) {
	h.mu.Lock()
	h.dirty[key] = true
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// wait returns a channel closed at the next change of the target with key
// (store.Key), after its counts were sampled; key "ws/" waits for any
// target of workspace ws.
func (h *hub) wait(key string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.waiters[key]
	if !ok {
		ch = make(chan struct{})
		h.waiters[key] = ch
	}
	return ch
}

// follow makes the hub keep a target's timeline from now on (a page of it
// was opened): its first sample is taken now, before the page reads the
// target, so the first change the page sees has a count before it.
func (h *hub) follow(ctx context.Context, key string) {
	h.mu.Lock()
	already := h.followed[key]
	h.followed[key] = true
	h.mu.Unlock()
	if already {
		return
	}
	ws, name := store.SplitKey(key)
	nodes, err := h.disp.Nodes(ctx, ws, name)
	if err != nil {
		return
	}
	var c counts
	for _, n := range nodes {
		c.add(n.State)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.hist[key]) == 0 { // else a change was sampled meanwhile
		h.hist[key] = []sample{{At: h.clock.Now(), counts: c}}
	}
}

// history is a target's node counts over time, oldest first.
func (h *hub) history(key string) []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sample(nil), h.hist[key]...)
}

// run samples changed targets until ctx ends.
func (h *hub) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
		}
		h.sample(ctx)
		t := h.clock.NewTimer(sampleEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// sample records the node counts of the changed targets that are
// followed (their page was opened since the server started) and wakes the pages waiting on the changed targets and their
// workspaces. Counts are read once per workspace, and only for followed
// targets: the read goes through the dispatcher's loop, so a server that
// nobody watches in a browser pays nothing for the studio.
func (h *hub) sample(ctx context.Context) {
	h.mu.Lock()
	byWS := map[string][]string{}
	followed := map[string]bool{}
	for key := range h.dirty {
		ws, _ := store.SplitKey(key)
		byWS[ws] = append(byWS[ws], key)
		if h.followed[key] {
			followed[ws] = true
		}
	}
	h.dirty = map[string]bool{}
	h.mu.Unlock()
	now := h.clock.Now()
	for ws, keys := range byWS {
		var cs map[string]counts
		if followed[ws] {
			nodes, err := h.disp.Nodes(ctx, ws, "")
			if err != nil {
				return // the server is stopping
			}
			cs = map[string]counts{}
			for _, n := range nodes {
				c := cs[store.Key(ws, n.Compute)]
				c.add(n.State)
				cs[store.Key(ws, n.Compute)] = c
			}
		}
		h.mu.Lock()
		for _, key := range keys {
			if hs := h.hist[key]; h.followed[key] && (len(hs) == 0 || hs[len(hs)-1].counts != cs[key]) {
				if len(hs) == historyLen {
					hs = append(hs[:0], hs[1:]...)
				}
				h.hist[key] = append(hs, sample{At: now, counts: cs[key]})
			}
			h.wake(key)
		}
		h.wake(ws + "/")
		h.mu.Unlock()
	}
}

// wake closes the channel of key's watchers; h.mu is held.
func (h *hub) wake(key string) {
	if ch, ok := h.waiters[key]; ok {
		close(ch)
		delete(h.waiters, key)
	}
}

// countsByTarget are the live node counts of a workspace's targets, by
// lower-case name.
func (h *hub) countsByTarget(ctx context.Context, ws string) (map[string]counts, error) {
	nodes, err := h.disp.Nodes(ctx, ws, "")
	if err != nil {
		return nil, err
	}
	out := map[string]counts{}
	for _, n := range nodes {
		k := strings.ToLower(n.Compute)
		c := out[k]
		c.add(n.State)
		out[k] = c
	}
	return out, nil
}
