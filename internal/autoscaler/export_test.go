package autoscaler

import "context"

// Reconcile runs one pass over the target with this key
// ("workspace/name"), as the controller's queue does; the controller
// tests step it by hand with a fake clock instead of running the queue.
func (c *Controller) Reconcile(ctx context.Context, key string) error { return c.reconcile(ctx, key) }
