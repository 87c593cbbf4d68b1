// Package provisioning is the controller that drives compute targets through
// their provisioning states: Creating → Succeeded or Failed, Updating →
// Succeeded, Deleting → gone. It is a level-based reconcile loop: for a key
// it reads the stored target and does what its state asks, so after a
// restart it simply picks up every target that is not in a final state.
package provisioning

import (
	"context"
	"errors"
	"log/slog"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/notify"
	"github.com/paddock-ml/paddock/internal/reconcile"
	"github.com/paddock-ml/paddock/internal/store"
)

// Controller reconciles compute targets.
type Controller struct {
	store    store.Store
	env      compute.ProvisionEnv
	log      *slog.Logger
	queue    *reconcile.Queue
	clock    clock.Clock
	notifier *notify.Notifier
}

// New returns a controller; call Watch to connect it, Run to start it. It
// publishes every provisioning transition on notify.Provisioned (so the node
// controller sizes a cluster that just became Succeeded).
func New(st store.Store, env compute.ProvisionEnv, log *slog.Logger, clk clock.Clock, n *notify.Notifier) *Controller {
	c := &Controller{store: st, env: env, log: log, clock: clock.Or(clk), notifier: n}
	c.queue = reconcile.New("provision", c.reconcile, log)
	c.queue.Clock = c.clock
	return c
}

// Watch subscribes the controller to what starts its passes: a user's
// change to a target.
func (c *Controller) Watch(n *notify.Notifier) {
	n.Subscribe(notify.Targets, c.Enqueue)
}

// Enqueue asks for the target with this key to be reconciled.
func (c *Controller) Enqueue(key string) { c.queue.Add(key) }

// Run picks up every target left mid-transition (after a restart) and
// reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	pending, err := c.store.ListComputesInStates(ctx, api.StateCreating, api.StateUpdating, api.StateDeleting)
	if err != nil {
		return err
	}
	for _, t := range pending {
		c.Enqueue(store.Key(t.Workspace, t.Name))
	}
	c.queue.Run(ctx, 2)
	return nil
}

func (c *Controller) reconcile(ctx context.Context, key string) (reconcile.Result, error) {
	return reconcile.Result{}, c.pass(ctx, key)
}

// pass does what the target's provisioning state asks.
func (c *Controller) pass(ctx context.Context, key string) error {
	ws, name := store.SplitKey(key)
	rec, err := c.store.GetCompute(ctx, ws, name)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	kind, ok := compute.Lookup(rec.Type)
	if !ok {
		return reconcile.Terminal(errors.New("unknown compute type " + rec.Type))
	}
	prov, _ := kind.(compute.Provisioner)
	log := c.log.With("compute", rec.Name, "workspace", ws, "type", rec.Type)

	switch rec.State {
	case api.StateCreating:
		ev := compute.EventProvisioned
		rec.Errors = nil
		if prov != nil {
			perr := prov.Provision(ctx, &rec, c.env)
			var pe *compute.ProvisionError
			switch {
			case errors.As(perr, &pe):
				ev = compute.EventProvisionFail
				rec.Errors = []api.ProvisioningError{api.ProvisioningError(*pe)}
				log.Warn("provisioning failed", "code", pe.Code, "reason", pe.Message)
			case perr != nil:
				return perr
			}
		}
		return c.transition(ctx, &rec, ev, log)
	case api.StateUpdating:
		return c.transition(ctx, &rec, compute.EventUpdated, log)
	case api.StateDeleting:
		if prov != nil {
			if err := prov.Deprovision(ctx, &rec, c.env); err != nil {
				return err
			}
		}
		if err := c.store.DeleteCompute(ctx, ws, rec.Name, rec.Version); err != nil {
			return err
		}
		log.Info("compute target deleted")
		c.notifier.Publish(notify.Provisioned, key) // so nothing of it is left behind elsewhere
	}
	return nil
}

func (c *Controller) transition(ctx context.Context, rec *store.Compute, ev compute.Event, log *slog.Logger) error {
	next, err := compute.Next(rec.Name, rec.State, ev)
	if err != nil {
		return reconcile.Terminal(err)
	}
	from := rec.State
	rec.State, rec.UpdatedAt = next, c.clock.Now()
	// A concurrent user change makes this a version conflict; the queue
	// retries and the next pass sees the new desired state.
	if err := c.store.UpdateCompute(ctx, rec); err != nil {
		return err
	}
	log.Info("provisioning state changed", "from", from, "to", next)
	c.notifier.Publish(notify.Provisioned, store.Key(rec.Workspace, rec.Name))
	return nil
}
