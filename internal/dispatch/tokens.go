package dispatch

import (
	"sync"

	"github.com/paddock-ml/paddock/internal/store"
)

// nodeTokens is the token hash of every node the loop holds, as of its
// last commit, so the server authenticates agents from memory: a
// heartbeat every 10 s from each of 50,000 nodes is 5,000 lookups a
// second, which a store read each (the cache before it kept a lookup
// 1 s) made a fifth of the leader's CPU. The loop writes it after each
// commit; handlers read it.
type nodeTokens struct {
	mu     sync.RWMutex
	byHash map[string]store.Node // ID, Workspace and Compute only
	hashOf map[string]string     // node id → its token hash
}

// reset makes the index that of nodes (after a load).
func (t *nodeTokens) reset(nodes map[string]*node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byHash, t.hashOf = make(map[string]store.Node, len(nodes)), make(map[string]string, len(nodes))
	for _, nd := range nodes {
		t.set(nd)
	}
}

// update records the nodes a commit wrote and forgets those it deleted.
func (t *nodeTokens) update(written map[string]*node, deleted []string) {
	if len(written) == 0 && len(deleted) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byHash == nil {
		t.byHash, t.hashOf = map[string]store.Node{}, map[string]string{}
	}
	for _, nd := range written {
		t.set(nd)
	}
	for _, id := range deleted {
		delete(t.byHash, t.hashOf[id])
		delete(t.hashOf, id)
	}
}

func (t *nodeTokens) set(nd *node) {
	if old, ok := t.hashOf[nd.ID]; ok && old != nd.TokenHash {
		delete(t.byHash, old) // a new token for the node: the old one no longer works
	}
	if nd.TokenHash == "" {
		delete(t.hashOf, nd.ID)
		return
	}
	t.byHash[nd.TokenHash] = store.Node{ID: nd.ID, Workspace: nd.Workspace, Compute: nd.Compute}
	t.hashOf[nd.ID] = nd.TokenHash
}

// NodeByTokenHash returns the node whose token has this hash, from the
// loop's memory: ok is false for a token of no node the loop holds (the
// caller then asks the store — a follower's dispatcher holds nothing).
// The node carries its ID, Workspace and Compute only.
func (d *Dispatcher) NodeByTokenHash(hash string) (n store.Node, ok bool) {
	d.tokens.mu.RLock()
	defer d.tokens.mu.RUnlock()
	n, ok = d.tokens.byHash[hash]
	return n, ok
}
