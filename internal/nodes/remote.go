package nodes

import (
	"context"
	"encoding/json"

	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/reconcile"
	"github.com/paddock-ml/paddock/internal/store"
)

func init() {
	Register("remote", reconcileRemote)
	Register("spark", reconcileRemote)
}

// reconcileRemote keeps one node on an attached remote machine (or a
// Spark cluster's head node): an agent installed and started there by its
// provider, replaced if it dies. A host of an SSH pool runs no node of its
// own (the pool's clusters use it). A problem reaching the machine is shown
// in the target's status (its reachable and error fields; the kind's other
// fields are kept).
func reconcileRemote(ctx context.Context, c *Controller, rec store.Compute) (reconcile.Result, error) {
	err := c.keepRemoteNode(ctx, rec)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	st, serr := compute.Status[compute.RemoteStatus](rec)
	if serr != nil {
		return reconcile.Result{}, serr
	}
	if st.Reachable == (err == nil) && st.Error == msg {
		return reconcile.Result{}, err
	}
	fields := map[string]any{}
	json.Unmarshal(rec.Status, &fields)
	fields["reachable"] = err == nil
	if msg == "" {
		delete(fields, "error")
	} else {
		fields["error"] = msg
	}
	data, _ := json.Marshal(fields)
	res, werr := c.updateStatus(ctx, rec.Workspace, rec.Name, data, nil)
	if err == nil {
		err = werr
	}
	return res, err
}

func (c *Controller) keepRemoteNode(ctx context.Context, rec store.Compute) error {
	prov, ok := c.provider(rec)
	if !ok {
		return nil
	}
	p, err := compute.Props[compute.RemoteProperties](rec)
	if err != nil {
		return err
	}
	nodes, err := c.Dispatch.Nodes(ctx, rec.Workspace, rec.Name)
	if err != nil {
		return err
	}
	if p.Pool != "" {
		for _, n := range nodes {
			if err := c.deleteNode(ctx, prov, n.ID, store.NodeUnusable); err != nil {
				return err
			}
		}
		return nil
	}
	st, _ := compute.Status[compute.RemoteStatus](rec)
	return c.keepOneNode(ctx, prov, rec, nodes, "waiting for the agent on "+p.Address+" to start",
		store.Node{Cores: float64(st.Cores), MemoryGB: st.MemoryGB},
		provider.NodeSpec{Cores: float64(st.Cores), MemoryGB: st.MemoryGB, Host: rec.Name})
}

// keepOneNode keeps one live node of an attached target: it deletes the
// nodes that are lost, preempted or leaving and, when none is left,
// launches n (with spec), saying why runs wait meanwhile.
func (c *Controller) keepOneNode(ctx context.Context, prov provider.Provider, rec store.Compute, nodes []store.Node, waiting string, n store.Node, spec provider.NodeSpec) error {
	live := 0
	for _, n := range nodes {
		switch n.State {
		case store.NodeUnusable, store.NodePreempted, store.NodeLeaving:
			if err := c.deleteNode(ctx, prov, n.ID, store.NodeUnusable); err != nil {
				return err
			}
		default:
			live++
		}
	}
	if live > 0 {
		return c.Dispatch.SetQueueReason(ctx, rec.Workspace, rec.Name, "")
	}
	c.Dispatch.SetQueueReason(ctx, rec.Workspace, rec.Name, waiting)
	return c.launch(ctx, prov, rec, n, spec)
}
