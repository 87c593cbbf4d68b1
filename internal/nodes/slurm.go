package nodes

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/reconcile"
	"github.com/paddock-ml/paddock/internal/store"
)

func init() { Register("slurm", reconcileSlurm) }

// reconcileSlurm turns a slurm target's queued runs into Slurm jobs: each
// run gets a pilot job (its resources, QoS and time limit) that runs an
// agent for that run only. A pending job's reason becomes the run's; a
// job that Slurm ended before its agent reported (time limit, preemption,
// node failure) ends the attempt; pilots whose run is gone are cancelled.
// Slurm is polled every second while anything is in flight.
func reconcileSlurm(ctx context.Context, c *Controller, rec store.Compute) (reconcile.Result, error) {
	prov, ok := c.provider(rec)
	jobs, can := prov.(provider.JobStates)
	cfg, canCfg := prov.(provider.NodeConfigurer)
	if !ok || !can || !canCfg {
		return reconcile.Result{}, nil
	}
	ws := rec.Workspace
	nodes, err := c.Dispatch.Nodes(ctx, ws, rec.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	active, err := c.Dispatch.ActiveRuns(ctx, ws, rec.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	queued, err := c.Dispatch.QueuedRuns(ctx, ws, rec.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	alive := map[string]bool{}
	for _, id := range active {
		alive[id] = true
	}
	pilots := map[string]store.Node{}
	reason := ""
	for _, n := range nodes {
		if !alive[n.Pin] { // its run ended (or was cancelled before it started)
			if err := c.deleteNode(ctx, prov, n.ID, store.NodeUnusable); err != nil {
				return reconcile.Result{}, err
			}
			continue
		}
		pilots[n.Pin] = n
		state, why, err := jobs.JobState(ctx, n.ID)
		if err != nil {
			return reconcile.Result{}, err
		}
		switch state {
		case "PENDING", "CONFIGURING", "":
			if reason == "" {
				reason = fmt.Sprintf("Slurm: Pending (%s)", why)
			}
		case "RUNNING", "COMPLETING", "COMPLETED":
		default: // CANCELLED, TIMEOUT, PREEMPTED, NODE_FAIL, FAILED, OUT_OF_MEMORY...
			if n.State != store.NodeIdle && n.State != store.NodeRunning || state != "COMPLETED" {
				c.Log.Warn("Slurm ended a pilot job", "node", n.ID, "state", state, "reason", why)
				if err := c.Dispatch.NodeGone(ctx, n.ID, state == "PREEMPTED"); err != nil {
					return reconcile.Result{}, err
				}
			}
		}
	}
	for _, r := range queued {
		if _, ok := pilots[r.ID]; ok {
			continue
		}
		if err := c.launchPilot(ctx, prov, cfg, rec, r); err != nil {
			return reconcile.Result{}, err
		}
		if reason == "" {
			reason = "Slurm: job submitted"
		}
	}
	if err := c.Dispatch.SetQueueReason(ctx, ws, rec.Name, reason); err != nil {
		return reconcile.Result{}, err
	}
	if len(active) > 0 {
		return reconcile.After(time.Second), nil
	}
	return reconcile.Result{}, nil
}

// launchPilot submits the pilot job of one queued run, sized for it and
// pinned to it.
func (c *Controller) launchPilot(ctx context.Context, prov provider.Provider, cfg provider.NodeConfigurer, rec store.Compute, r store.Run) error {
	cores := max(r.Resources.Cores, 1)
	req := provider.NodeRequest{Workspace: rec.Workspace, Host: rec.Name, Cores: cores, MemoryGB: r.Resources.MemoryGB,
		GPUs: r.Resources.GPUs, OneRun: true}
	if r.MaxRunDurationSeconds > 0 {
		req.TimeMinutes = int(math.Ceil(float64(r.MaxRunDurationSeconds)/60)) + 1
	}
	config, err := cfg.NodeConfig(ctx, req)
	if err != nil {
		return err
	}
	n := store.Node{Cores: cores, MemoryGB: r.Resources.MemoryGB, Pin: r.ID, MaxRuns: 1}
	for i := range r.Resources.GPUs {
		n.GPUs = append(n.GPUs, store.GPU{Index: i})
	}
	return c.launch(ctx, prov, rec, n, provider.NodeSpec{Cores: cores, MemoryGB: r.Resources.MemoryGB,
		GPUs: r.Resources.GPUs, Host: rec.Name, Config: config})
}
