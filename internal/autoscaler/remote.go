package autoscaler

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/store"
)

// reconcileRemote keeps one node on an attached remote machine: an agent
// installed and started over SSH by the ssh provider, replaced if it dies.
// A problem reaching the machine is shown in the target's status.
func (c *Controller) reconcileRemote(ctx context.Context, rec store.Compute) error {
	err := c.keepRemoteNode(ctx, rec)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if werr := c.writeRemoteStatus(ctx, rec.Workspace, rec.Name, err == nil, msg); werr != nil && err == nil {
		err = werr
	}
	return err
}

// writeRemoteStatus records whether the machine could be reached.
func (c *Controller) writeRemoteStatus(ctx context.Context, ws, name string, ok bool, msg string) error {
	rec, err := c.Store.GetCompute(ctx, ws, name)
	if err != nil {
		return err
	}
	var st compute.RemoteStatus
	json.Unmarshal(rec.Status, &st)
	if st.Reachable == ok && st.Error == msg {
		return nil
	}
	st.Reachable, st.Error = ok, msg
	rec.Status, _ = json.Marshal(st)
	if err := c.Store.UpdateCompute(ctx, &rec); err != nil && !errors.Is(err, api.ErrConflict) {
		return err
	}
	return nil
}

func (c *Controller) keepRemoteNode(ctx context.Context, rec store.Compute) error {
	prov, ok := c.Providers.Get("ssh")
	if !ok || c.Secrets == nil {
		return nil
	}
	nodes, err := c.Dispatch.Nodes(ctx, rec.Workspace, rec.Name)
	if err != nil {
		return err
	}
	target, p, err := c.sshTarget(rec)
	if err != nil {
		return err
	}
	if p.Pool != "" {
		// A pool host runs no node of its own: the pool's clusters use it.
		for _, n := range nodes {
			if err := c.deleteNode(ctx, prov, n.ID, NodeUnusable); err != nil {
				return err
			}
		}
		return nil
	}
	live := 0
	for _, n := range nodes {
		switch n.State {
		case NodeUnusable, NodePreempted, NodeLeaving:
			if err := c.deleteNode(ctx, prov, n.ID, NodeUnusable); err != nil {
				return err
			}
		default:
			live++
		}
	}
	if live > 0 {
		return c.Dispatch.SetQueueReason(ctx, rec.Workspace, rec.Name, "")
	}
	var st compute.RemoteStatus
	json.Unmarshal(rec.Status, &st)
	c.Dispatch.SetQueueReason(ctx, rec.Workspace, rec.Name, "waiting for the agent on "+p.Address+" to start")
	return c.launch(ctx, prov, rec, store.Node{Cores: float64(st.Cores), MemoryGB: st.MemoryGB},
		provider.NodeSpec{Cores: float64(st.Cores), MemoryGB: st.MemoryGB, SSH: &target})
}
