package autoscaler

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/store"
)

// slurmJobs is the ssh provider in its slurm role: it can ask a pilot
// job's state.
type slurmJobs interface {
	provider.Provider
	JobState(ctx context.Context, nodeID string) (state, reason string, err error)
}

// reconcileSlurm turns a slurm target's queued runs into Slurm jobs: each
// run gets a pilot job (its resources, QoS and time limit) that runs an
// agent for that run only. A pending job's reason becomes the run's; a
// job that Slurm ended before its agent reported (time limit, preemption,
// node failure) ends the attempt; pilots whose run is gone are cancelled.
// Slurm is polled every second while anything is in flight.
func (c *Controller) reconcileSlurm(ctx context.Context, k string, rec store.Compute) error {
	p0, ok := c.Providers.Get("slurm")
	prov, can := p0.(slurmJobs)
	if !ok || !can || c.Secrets == nil {
		return nil
	}
	ws := rec.Workspace
	var p compute.SlurmProperties
	if err := json.Unmarshal(rec.Properties, &p); err != nil {
		return err
	}
	nodes, err := c.Dispatch.Nodes(ctx, ws, rec.Name)
	if err != nil {
		return err
	}
	active, err := c.Dispatch.ActiveRuns(ctx, ws, rec.Name)
	if err != nil {
		return err
	}
	queued, err := c.Dispatch.QueuedRuns(ctx, ws, rec.Name)
	if err != nil {
		return err
	}
	alive := map[string]bool{}
	for _, id := range active {
		alive[id] = true
	}
	pilots := map[string]store.Node{}
	reason := ""
	for _, n := range nodes {
		if !alive[n.Pin] { // its run ended (or was cancelled before it started)
			if err := c.deleteNode(ctx, prov, n.ID, NodeUnusable); err != nil {
				return err
			}
			continue
		}
		pilots[n.Pin] = n
		state, why, err := prov.JobState(ctx, n.ID)
		if err != nil {
			return err
		}
		switch state {
		case "PENDING", "CONFIGURING", "":
			if reason == "" {
				reason = fmt.Sprintf("Slurm: Pending (%s)", why)
			}
		case "RUNNING", "COMPLETING", "COMPLETED":
		default: // CANCELLED, TIMEOUT, PREEMPTED, NODE_FAIL, FAILED, OUT_OF_MEMORY...
			if n.State != NodeIdle && n.State != NodeRunning || state != "COMPLETED" {
				c.Log.Warn("Slurm ended a pilot job", "node", n.ID, "state", state, "reason", why)
				if err := c.Dispatch.NodeGone(ctx, n.ID, state == "PREEMPTED"); err != nil {
					return err
				}
			}
		}
	}
	target, _, err := c.sshTarget(rec)
	if err != nil {
		return err
	}
	for _, r := range queued {
		if _, ok := pilots[r.ID]; ok {
			continue
		}
		cores := max(r.Resources.Cores, 1)
		job := &provider.SlurmJob{Env: compute.SlurmEnv(p), Partition: p.Partition, Account: p.Account, QoS: p.QoS,
			CPUs: int(math.Ceil(cores)), MemoryMB: int(r.Resources.MemoryGB * 1024), GPUs: r.Resources.GPUs, OneRun: true}
		if r.MaxRunDurationSeconds > 0 {
			job.TimeMinutes = int(math.Ceil(float64(r.MaxRunDurationSeconds)/60)) + 1
		}
		n := store.Node{Cores: cores, MemoryGB: r.Resources.MemoryGB, Pin: r.ID, MaxRuns: 1}
		for i := range r.Resources.GPUs {
			n.GPUs = append(n.GPUs, store.GPU{Index: i})
		}
		t := target
		if err := c.launch(ctx, prov, rec, n, provider.NodeSpec{Cores: cores, MemoryGB: r.Resources.MemoryGB,
			GPUs: r.Resources.GPUs, SSH: &t, Slurm: job}); err != nil {
			return err
		}
		if reason == "" {
			reason = "Slurm: job submitted"
		}
	}
	if err := c.Dispatch.SetQueueReason(ctx, ws, rec.Name, reason); err != nil {
		return err
	}
	if len(active) > 0 {
		c.queue.AddAfter(k, time.Second)
	}
	return nil
}
