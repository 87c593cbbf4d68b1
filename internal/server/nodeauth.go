package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
	tokens "github.com/paddock-ml/paddock/internal/token"
)

// nodeAuthFor is how long a node token's lookup is reused. Agents poll
// and report all the time; a node removed is refused within this, and the
// dispatcher refuses its calls at once anyway (the node is gone there).
const nodeAuthFor = time.Second

// nodeAuth caches node token lookups the dispatcher cannot answer (on a
// follower, or for a node it does not hold), so agents' heartbeats do not
// read the database.
type nodeAuth struct {
	mu    sync.Mutex
	nodes map[string]cachedNode // by token hash
}

type cachedNode struct {
	node store.Node
	at   time.Time
}

// node finds the node a token belongs to.
func (a *API) node(ctx context.Context, token string) (store.Node, error) {
	hash := tokens.Hash(token)
	if a.dispatch != nil {
		if n, ok := a.dispatch.NodeByTokenHash(hash); ok {
			return n, nil // a node the leader's loop holds: no store read
		}
	}
	now := a.clock.Now()
	a.nodeAuth.mu.Lock()
	c, ok := a.nodeAuth.nodes[hash]
	a.nodeAuth.mu.Unlock()
	if ok && now.Sub(c.at) < nodeAuthFor && !now.Before(c.at) {
		return c.node, nil
	}
	n, err := a.store.NodeByTokenHash(ctx, hash)
	if errors.Is(err, api.ErrNotFound) {
		return n, api.Unauthenticated("the node token is not valid for this server")
	}
	if err != nil {
		return n, err
	}
	a.nodeAuth.mu.Lock()
	if a.nodeAuth.nodes == nil || len(a.nodeAuth.nodes) > 200000 {
		a.nodeAuth.nodes = map[string]cachedNode{} // bounded: start over
	}
	a.nodeAuth.nodes[hash] = cachedNode{node: n, at: now}
	a.nodeAuth.mu.Unlock()
	return n, nil
}
