package dispatch

import (
	"context"
	"fmt"
	"sort"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/scheduler"
	"github.com/paddock-ml/paddock/internal/store"
)

// ClusterView is what the autoscaler needs of one target: its nodes and
// its queued runs, in queue order.
func (d *Dispatcher) ClusterView(ctx context.Context, ws, compute string) ([]scheduler.NodeView, []scheduler.Demand, error) {
	var nodes []scheduler.NodeView
	var queue []scheduler.Demand
	key := store.Key(ws, compute)
	err := d.do(ctx, func(*txn) error {
		for _, nd := range d.nodes {
			if nd.target() != key {
				continue
			}
			n := scheduler.NodeView{ID: nd.ID, State: nd.State, FreeCores: nd.freeCores, FreeMemGB: nd.freeMem,
				FreeGPUs: len(nd.freeGPUs), IdleSince: nd.idleSince}
			if nd.State == store.NodeStarting {
				n.FreeCores, n.FreeMemGB, n.FreeGPUs = nd.Cores, nd.MemoryGB, len(nd.GPUs)
			}
			nodes = append(nodes, n)
		}
		for _, r := range d.queues[key] {
			queue = append(queue, scheduler.Demand{Nodes: max(r.NodeCount, 1), Cores: r.Resources.Cores,
				MemoryGB: r.Resources.MemoryGB, GPUs: r.Resources.GPUs})
		}
		return nil
	})
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	return nodes, queue, err
}

// SetRunReasons sets why queued runs wait (their status_reason, by run
// id), for targets where each run waits for something of its own (its
// pod), in one commit; a run that is no longer queued is left as it is.
func (d *Dispatcher) SetRunReasons(ctx context.Context, ws string, reasons map[string]string) error {
	return d.do(ctx, func(tx *txn) error {
		for id, reason := range reasons {
			if r := d.runs[id]; r != nil && r.Workspace == ws && r.Status == api.RunQueued && r.StatusReason != reason {
				r.StatusReason = reason
				tx.touchRun(r)
			}
		}
		return nil
	})
}

// FailQueued fails a queued run that can never start (its pods fail
// before their agent connects, again and again); a run that is no longer
// queued is left as it is.
func (d *Dispatcher) FailQueued(ctx context.Context, ws, id, reason, msg string) error {
	return d.do(ctx, func(tx *txn) error {
		if r := d.runs[id]; r != nil && r.Workspace == ws && r.Status == api.RunQueued {
			d.finish(tx, r, api.RunFailed, nil, reason, msg)
		}
		return nil
	})
}

// SetQueueReason sets why a target's queued runs wait (their
// status_reason); only runs whose reason changes are written.
func (d *Dispatcher) SetQueueReason(ctx context.Context, ws, compute, reason string) error {
	return d.do(ctx, func(tx *txn) error {
		for _, r := range d.queues[store.Key(ws, compute)] {
			if r.StatusReason != reason {
				r.StatusReason = reason
				tx.touchRun(r)
			}
		}
		return nil
	})
}

// Drain marks an idle node leaving so nothing is placed on it, and reports
// whether it did; a node with runs placed or on their way is not drained.
func (d *Dispatcher) Drain(ctx context.Context, id string) (bool, error) {
	drained := false
	err := d.do(ctx, func(tx *txn) error {
		nd := d.nodes[id]
		if nd == nil {
			return nil
		}
		if nd.State == store.NodeLeaving {
			drained = true
			return nil
		}
		if len(nd.placed) > 0 || len(nd.pending) > 0 {
			return nil // busy (perhaps back from unusable): keep it
		}
		nd.State = store.NodeLeaving
		tx.touchNode(nd)
		tx.wakeNode(nd.ID)
		tx.changed(nd.Workspace, nd.Compute)
		drained = true
		return nil
	})
	return drained, err
}

// RemoveNode forgets a node the provider has released.
func (d *Dispatcher) RemoveNode(ctx context.Context, id string) error {
	return d.do(ctx, func(tx *txn) error {
		nd := d.nodes[id]
		if nd == nil {
			return nil
		}
		for _, r := range nd.placed {
			d.finish(tx, r, api.RunFailed, nil, "NodeLost", "node "+id+" was removed")
		}
		delete(d.nodes, id)
		d.sortedIDs = nil
		delete(tx.nodes, id)
		tx.delNodes = append(tx.delNodes, id)
		tx.changed(nd.Workspace, nd.Compute)
		return nil
	})
}

// NodeGone records that a node vanished without the server asking: a
// preempted node's runs are requeued as a new attempt (up to
// MaxPreemptions), those of a node that died fail with NodeLost.
func (d *Dispatcher) NodeGone(ctx context.Context, id string, preempted bool) error {
	why := "its agent exited"
	if preempted {
		why = "preempted"
	}
	return d.NodeEnded(ctx, id, preempted, why)
}

// NodeEnded is NodeGone with the provider's word for what happened (e.g.
// "its pod was evicted: The node was low on resource: memory."), which
// becomes the node's reason and part of its runs' error.
func (d *Dispatcher) NodeEnded(ctx context.Context, id string, preempted bool, why string) error {
	return d.do(ctx, func(tx *txn) error {
		nd := d.nodes[id]
		if nd == nil {
			return nil
		}
		nd.State, nd.Reason = store.NodeUnusable, why
		if preempted {
			nd.State = store.NodePreempted
		}
		tx.touchNode(nd)
		tx.wakeNode(id)
		tx.changed(nd.Workspace, nd.Compute)
		for _, r := range nd.placed {
			if preempted {
				msg := "node " + id + " was preempted"
				if why != "preempted" {
					msg += " (" + why + ")"
				}
				d.requeue(tx, r, nd, "Preempted", msg)
			} else {
				d.finish(tx, r, api.RunFailed, nil, "NodeLost", "node "+id+" stopped: "+nd.Reason)
			}
		}
		return nil
	})
}

// requeue ends r's current attempt as preempted and queues the run again
// (at its original place) for a new attempt, or fails it after too many.
func (d *Dispatcher) requeue(tx *txn, r *store.Run, nd *node, reason, msg string) {
	preemptions := 0
	for _, a := range r.Attempts {
		if a.Reason == "Preempted" {
			preemptions++
		}
	}
	if reason == "Preempted" && preemptions+1 > d.opts.MaxPreemptions {
		d.finish(tx, r, api.RunFailed, nil, "Preempted",
			fmt.Sprintf("node %s was preempted; the run was preempted %d times, the limit", nd.ID, preemptions+1))
		return
	}
	now := d.now()
	a := &r.Attempts[len(r.Attempts)-1]
	a.Status, a.EndedAt, a.Reason, a.Error = api.RunFailed, &now, reason, msg
	d.releaseAll(tx, r)
	r.Node, r.CancelRequested, r.Parts = "", "", nil
	r.Status = api.RunQueued
	r.StatusReason = fmt.Sprintf("%s: restarting as attempt %d", reason, r.Attempt+1)
	d.enqueue(r)
	tx.touchRun(r)
	tx.changed(r.Workspace, r.Compute)
	tx.schedule = true
}

// Nodes returns the nodes of one target (all targets when compute is "").
func (d *Dispatcher) Nodes(ctx context.Context, ws, compute string) ([]store.Node, error) {
	var out []store.Node
	err := d.do(ctx, func(*txn) error {
		for _, nd := range d.nodes {
			if nd.Workspace == ws && (compute == "" || store.Key(ws, nd.Compute) == store.Key(ws, compute)) {
				n := nd.Node
				n.LastSeen = nd.lastSeen
				out = append(out, n)
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// ActiveRuns lists the ids of a target's runs that have not ended.
func (d *Dispatcher) ActiveRuns(ctx context.Context, ws, compute string) ([]string, error) {
	var ids []string
	key := store.Key(ws, compute)
	err := d.do(ctx, func(*txn) error {
		for _, r := range d.runs {
			if store.Key(r.Workspace, r.Compute) == key {
				ids = append(ids, r.ID)
			}
		}
		return nil
	})
	sort.Strings(ids)
	return ids, err
}

// CancelRun cancels a run (for callers that need only the error).
func (d *Dispatcher) CancelRun(ctx context.Context, ws, id, why string) error {
	_, err := d.Cancel(ctx, ws, id, why)
	return err
}

// SetOutputs records the files an attempt uploaded so far (its
// checkpoints), so users see them while the run runs.
func (d *Dispatcher) SetOutputs(ctx context.Context, runID string, attempt int, files []api.OutputFile) error {
	return d.do(ctx, func(tx *txn) error {
		r := d.runs[runID]
		if r == nil || r.Attempt != attempt {
			return nil
		}
		r.Outputs = files
		tx.touchRun(r)
		return nil
	})
}

// Evict takes a node out of service at once (an instance being stopped):
// runs on it are requeued as a new attempt with the given reason, to
// restart from their checkpoints when the target has a node again.
func (d *Dispatcher) Evict(ctx context.Context, id, reason, msg string) error {
	return d.do(ctx, func(tx *txn) error {
		nd := d.nodes[id]
		if nd == nil {
			return nil
		}
		nd.State = store.NodeLeaving
		tx.touchNode(nd)
		tx.wakeNode(id)
		tx.changed(nd.Workspace, nd.Compute)
		for _, r := range nd.placed {
			d.requeue(tx, r, nd, reason, msg)
		}
		return nil
	})
}

// TargetLoad is how many of a target's runs are queued and placed.
func (d *Dispatcher) TargetLoad(ctx context.Context, ws, compute string) (queued, placed int, err error) {
	key := store.Key(ws, compute)
	err = d.do(ctx, func(*txn) error {
		for _, r := range d.runs {
			if store.Key(r.Workspace, r.Compute) != key {
				continue
			}
			if r.Status == api.RunQueued {
				queued++
			} else {
				placed++
			}
		}
		return nil
	})
	return queued, placed, err
}

// QueueHead is how many runs a target has queued and why the first one
// waits, without copying the queue.
func (d *Dispatcher) QueueHead(ctx context.Context, ws, compute string) (n int, reason string, err error) {
	err = d.do(ctx, func(*txn) error {
		if q := d.queues[store.Key(ws, compute)]; len(q) > 0 {
			n, reason = len(q), q[0].StatusReason
		}
		return nil
	})
	return n, reason, err
}

// QueuedRuns returns copies of a target's queued runs, in queue order.
func (d *Dispatcher) QueuedRuns(ctx context.Context, ws, compute string) ([]store.Run, error) {
	var out []store.Run
	err := d.do(ctx, func(*txn) error {
		for _, r := range d.queues[store.Key(ws, compute)] {
			out = append(out, clone(r))
		}
		return nil
	})
	return out, err
}
