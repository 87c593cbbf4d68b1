package nodes

import (
	"context"

	"github.com/paddock-ml/paddock/internal/reconcile"
)

// Reconcile runs one pass over the target with this key
// ("workspace/name"), as the controller's queue does; the controller
// tests step it by hand with a fake clock instead of running the queue.
func (c *Controller) Reconcile(ctx context.Context, key string) (reconcile.Result, error) {
	return c.reconcile(ctx, key)
}

// MaxCreatesPerPass is how many nodes one pass over a cluster starts at most.
const MaxCreatesPerPass = maxCreatesPerPass
