package postgres

import (
	"sync"

	"github.com/paddock-ml/paddock/internal/store"
)

// codeFenced is the SQLSTATE paddock_fence raises when the lease has moved
// on from the epoch a write names.
const codeFenced = "PD001"

// fence is which writes this server may make: all of them unfenced while
// it bootstraps, none of the fenced ones while it follows, and as leader
// the fenced ones checked against its epoch in their own transaction.
type fence struct {
	mu    sync.Mutex
	mode  fenceMode
	e     int64
	lost  chan struct{} // closed when the term of e ends
	ended bool
}

type fenceMode int

const (
	bootstrapping fenceMode = iota
	following
	leading
)

func (f *fence) init() { f.lost = make(chan struct{}) }

// epoch is what a fenced write names: 0 (no check) while bootstrapping,
// the term's epoch while leading; a follower's fenced writes are refused.
func (f *fence) epoch() (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.mode == bootstrapping:
		return 0, nil
	case f.mode == following || f.ended:
		return 0, store.ErrNotLeader
	}
	return f.e, nil
}

func (f *fence) follow() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode == bootstrapping {
		f.mode = following
	}
}

// lead starts a term and returns the channel closed when it ends.
func (f *fence) lead(epoch int64) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode, f.e, f.ended, f.lost = leading, epoch, false, make(chan struct{})
	return f.lost
}

// resign ends the current term without telling Lost: the server gave
// the lease up itself.
func (f *fence) resign() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = true
}

// lose ends the current term (once); fenced writes fail from now on.
func (f *fence) lose() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode == leading && !f.ended {
		f.ended = true
		close(f.lost)
	}
}
