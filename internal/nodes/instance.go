package nodes

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/policy"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/reconcile"
	"github.com/paddock-ml/paddock/internal/store"
)

// Instance states (status.state), as in PRODUCT.md.
const (
	InstanceCreating   = "Creating"
	InstanceRunning    = "Running"
	InstanceStopping   = "Stopping"
	InstanceStopped    = "Stopped"
	InstanceStarting   = "Starting"
	InstanceRestarting = "Restarting"
	InstanceFailed     = "Failed"
)

func init() { Register("instance", reconcileInstance) }

// reconcileInstance drives a compute instance: one node while it is
// Running, none while Stopped; Starting, Stopping and Restarting are the
// requests a user made, which this pass carries out. A Running instance
// with no run, no queued run and no SSH session for its
// idle_time_before_shutdown is stopped.
func reconcileInstance(ctx context.Context, c *Controller, rec store.Compute) (reconcile.Result, error) {
	ws := rec.Workspace
	p, err := compute.Props[compute.InstanceProperties](rec)
	if err != nil {
		return reconcile.Result{}, err
	}
	st, err := compute.Status[compute.InstanceStatus](rec)
	if err != nil {
		return reconcile.Result{}, err
	}
	prov, ok := c.provider(rec)
	if !ok {
		return reconcile.Result{}, nil
	}
	nodes, err := c.Dispatch.Nodes(ctx, ws, rec.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	if nodes, err = c.deleteDead(ctx, prov, nodes); err != nil {
		return reconcile.Result{}, err
	}
	next, live, res, err := c.instanceStep(ctx, prov, rec, p, st.State, nodes)
	if err != nil {
		return reconcile.Result{}, err
	}
	reason := ""
	switch next {
	case InstanceStopped:
		reason = fmt.Sprintf("instance %s is stopped; start it with `paddock compute start %s`", rec.Name, rec.Name)
	case InstanceStarting, InstanceCreating:
		reason = "waiting for instance " + rec.Name + " to start"
	}
	if reason == "" && len(live) > 0 {
		reason = fmt.Sprintf("waiting for a free slot (max_concurrent_runs %d)", *p.MaxConcurrentRuns)
	}
	if err := c.Dispatch.SetQueueReason(ctx, ws, rec.Name, reason); err != nil {
		return reconcile.Result{}, err
	}
	queued, placed, err := c.Dispatch.TargetLoad(ctx, ws, rec.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	ns := compute.InstanceStatus{State: next, QueuedRuns: queued, RunningRuns: placed}
	for _, n := range live {
		if n.SSH != "" {
			host, port, _ := strings.Cut(n.SSH, ":")
			ns.SSH = fmt.Sprintf("ssh -p %s -i <your private key> %s@%s", port, p.AssignedUser, host)
		}
	}
	// A user's start, stop or restart since this pass read the instance
	// wins: the next pass carries it out.
	data, _ := json.Marshal(ns)
	wrote, err := c.updateStatus(ctx, ws, rec.Name, data, func(cur store.Compute) bool {
		now, err := compute.Status[compute.InstanceStatus](cur)
		return err == nil && now.State == st.State
	})
	if err != nil || wrote.Requeue {
		return wrote, err
	}
	if next != st.State {
		return reconcile.Again, nil // carry the new state out (e.g. Stopping → Stopped)
	}
	return res, nil
}

// instanceStep carries out what the instance's state asks of its nodes,
// and returns the state it moves to and the nodes it keeps.
func (c *Controller) instanceStep(ctx context.Context, prov provider.Provider, rec store.Compute, p compute.InstanceProperties,
	state string, nodes []store.Node) (next string, live []store.Node, res reconcile.Result, err error) {
	ready := false
	for _, n := range nodes {
		if n.State != store.NodeLeaving {
			live = append(live, n)
			ready = ready || n.State == store.NodeIdle || n.State == store.NodeRunning
		}
	}
	next = state
	switch state {
	case InstanceCreating, InstanceStarting, InstanceRunning:
		if len(live) == 0 {
			if err := c.createInstanceNode(ctx, prov, rec, p); err != nil {
				return "", nil, res, err
			}
		}
		if ready {
			next = InstanceRunning
		}
		if next == InstanceRunning && state == InstanceRunning {
			idle, fromPolicy, err := c.idleTime(ctx, rec)
			if err != nil {
				return "", nil, res, err
			}
			if stop, wait := c.idleExpired(ctx, rec.Workspace, rec.Name, idle, live); stop {
				c.Log.Info("instance idle; stopping it", "compute", rec.Name, "idle_time_before_shutdown", idle.String(), "from_policy", fromPolicy)
				if fromPolicy {
					c.Policy.Fire(ctx, policy.Event{Workspace: rec.Workspace, Policy: policy.NameMaxIdle, Action: "stopped",
						Compute: rec.Name, User: p.AssignedUser, Limit: idle.String(),
						Message: fmt.Sprintf("instance %s was idle for %s, the workspace's %s, and was stopped", rec.Name, idle, policy.NameMaxIdle)})
				}
				next = InstanceStopping
			} else if wait > 0 {
				res = reconcile.After(wait)
			}
		}
	case InstanceStopping, InstanceRestarting:
		for _, n := range live {
			if err := c.Dispatch.Evict(ctx, n.ID, "InstanceStopped", "instance "+rec.Name+" was stopped"); err != nil {
				return "", nil, res, err
			}
		}
		fallthrough
	case InstanceStopped:
		for _, n := range live {
			if err := c.deleteNode(ctx, prov, n.ID, store.NodeUnusable); err != nil {
				return "", nil, res, err
			}
		}
		live = nil
		if state == InstanceRestarting {
			next = InstanceStarting
		} else if state == InstanceStopping {
			next = InstanceStopped
		}
	}
	return next, live, res, nil
}

// idleTime is how long an instance may be idle before it is stopped (0:
// never): its idle_time_before_shutdown, capped by the workspace's policy;
// fromPolicy says the policy set it.
func (c *Controller) idleTime(ctx context.Context, rec store.Compute) (d time.Duration, fromPolicy bool, err error) {
	own, ok := compute.IdleTimeOf(kindOf(rec.Type), rec.Properties)
	if !ok {
		return 0, false, nil
	}
	sp, err := c.Store.Policy(ctx, rec.Workspace)
	if err != nil {
		return 0, false, err
	}
	d, fromPolicy = policy.Policy{MaxIdle: time.Duration(sp.MaxIdleSeconds) * time.Second}.EffectiveIdle(own)
	return d, fromPolicy, nil
}

func kindOf(typ string) compute.Kind {
	k, _ := compute.Lookup(typ)
	return k
}

// idleExpired says whether the instance has been idle long enough to be
// stopped, and otherwise how long until it may be.
func (c *Controller) idleExpired(ctx context.Context, ws, name string, idle time.Duration, live []store.Node) (bool, time.Duration) {
	if idle <= 0 || len(live) == 0 {
		return false, 0
	}
	queued, placed, err := c.Dispatch.TargetLoad(ctx, ws, name)
	if err != nil || queued > 0 || placed > 0 {
		return false, 0
	}
	n := live[0]
	if n.SSHSessions > 0 || n.State != store.NodeIdle {
		return false, time.Second
	}
	since := c.now().Sub(n.LastActivity)
	if since >= idle {
		return true, 0
	}
	return false, idle - since + 10*time.Millisecond
}

// createInstanceNode starts an instance's node, with its home directory
// and, when enabled, its SSH endpoint.
func (c *Controller) createInstanceNode(ctx context.Context, prov provider.Provider, rec store.Compute, p compute.InstanceProperties) error {
	size, ok := c.Sizes.Find(p.VMSize)
	if !ok {
		return fmt.Errorf("instance %s: size %s is no longer in the catalog", rec.Name, p.VMSize)
	}
	n := store.Node{Cores: float64(size.Cores), MemoryGB: size.MemoryGB, MaxRuns: *p.MaxConcurrentRuns}
	spec := provider.NodeSpec{Cores: float64(size.Cores), MemoryGB: size.MemoryGB, GPUs: size.GPUs,
		HomeDir: c.homeDir(rec.Workspace, rec.Name), Owner: p.AssignedUser}
	if p.SSHPublicAccess {
		spec.SSHAuthorizedKey, spec.SSHHostKeyFile = p.AdminUserSSHKey, c.homeDir(rec.Workspace, rec.Name)+".ssh_host_key"
	}
	return c.launch(ctx, prov, rec, n, spec)
}
