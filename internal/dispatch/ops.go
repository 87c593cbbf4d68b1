package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/scheduler"
	"github.com/paddock-ml/paddock/internal/store"
)

// NewRunID returns a new, unique run id.
func NewRunID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "run-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// RunToken returns the run-scoped token of an attempt. It is signed, not
// stored, so it can be handed out again after a restart; it is accepted
// only while that attempt is current and the run has not ended.
func (d *Dispatcher) RunToken(runID string, attempt int) string {
	a := strconv.Itoa(attempt)
	// '.' separates: run ids and the base64url signature never contain it.
	return "pdr_" + runID + "." + a + "." + d.box.Sign("run-token", runID, a)
}

// ParseRunToken checks a run token's signature and returns what it names.
func (d *Dispatcher) ParseRunToken(tok string) (runID string, attempt int, ok bool) {
	body, ok := strings.CutPrefix(tok, "pdr_")
	parts := strings.Split(body, ".")
	if !ok || len(parts) != 3 || !d.box.Verify(parts[2], "run-token", parts[0], parts[1]) {
		return "", 0, false
	}
	n, err := strconv.Atoi(parts[1])
	return parts[0], n, err == nil
}

// byIdempotencyKey finds the run an earlier submission with r's
// idempotency key made: in the loop's runs, else in the store.
func (d *Dispatcher) byIdempotencyKey(ctx context.Context, tx *txn, r store.Run) (store.Run, bool, error) {
	if r.IdempotencyKey == "" {
		return store.Run{}, false, nil
	}
	for _, x := range tx.runs {
		if x.IdempotencyKey == r.IdempotencyKey && x.Workspace == r.Workspace && x.CreatedBy == r.CreatedBy {
			return clone(x), true, nil
		}
	}
	// The loop's reads must not depend on the caller: a caller that gave
	// up must not make this look like a new key.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	prev, err := d.st.RunByIdempotencyKey(rctx, r.Workspace, r.CreatedBy, r.IdempotencyKey)
	switch {
	case err == nil:
		return prev, true, nil
	case errors.Is(err, api.ErrNotFound):
		return store.Run{}, false, nil
	}
	return store.Run{}, false, err
}

// Submit queues a new run. r must be validated; Submit gives it an id, a
// place in the queue, and refuses a run no node of its target could ever
// hold. A repeated idempotency key returns the first run.
func (d *Dispatcher) Submit(ctx context.Context, r store.Run) (store.Run, error) {
	var out store.Run
	err := d.do(ctx, func(tx *txn) error {
		if prev, ok, err := d.byIdempotencyKey(ctx, tx, r); err != nil || ok {
			out = prev
			return err
		}
		if err := d.checkFits(&r); err != nil {
			return err
		}
		d.seq++
		r.Seq = d.seq
		r.ID = NewRunID()
		r.Status = api.RunQueued
		r.CreatedAt = d.now()
		run := r
		d.runs[run.ID] = &run
		d.enqueue(&run)
		tx.touchRun(&run)
		tx.schedule = true
		tx.changed(run.Workspace, run.Compute)
		tx.afterPlacement(func() { out = clone(&run) }) // placed in this batch if a node is free
		return nil
	})
	if err != nil {
		return store.Run{}, err
	}
	return out, nil
}

// checkFits refuses a run larger than every node its target has.
func (d *Dispatcher) checkFits(r *store.Run) error {
	key := store.Key(r.Workspace, r.Compute)
	req := scheduler.Request{Nodes: 1, Cores: r.Resources.Cores, MemoryGB: r.Resources.MemoryGB, GPUs: r.Resources.GPUs}
	var count int
	var biggest store.Node
	for _, nd := range d.nodes {
		if nd.target() != key || nd.State == store.NodeStarting || nd.Pin != "" {
			continue // a pilot sized for another run says nothing of the target
		}
		count++
		gpus := make([]int, len(nd.GPUs))
		if scheduler.Fits(req, scheduler.Node{FreeCores: nd.Cores, FreeMemGB: nd.MemoryGB, FreeGPUs: gpus}) {
			return nil
		}
		if nd.Cores > biggest.Cores {
			biggest = nd.Node
		}
	}
	if count == 0 {
		return nil // nodes may still register; the run waits in the queue
	}
	return api.Invalid("resources", "the run asks for %g cores, %g GiB memory and %d GPUs per node, more than any node of %s has (the largest: %g cores, %g GiB, %d GPUs)",
		r.Resources.Cores, r.Resources.MemoryGB, r.Resources.GPUs, r.Compute, biggest.Cores, biggest.MemoryGB, len(biggest.GPUs))
}

// withLiveRun runs fn in the loop on run id of workspace ws when the loop
// holds it (it has not ended); found says whether it did.
func (d *Dispatcher) withLiveRun(ctx context.Context, ws, id string, fn func(tx *txn, r *store.Run) error) (found bool, err error) {
	err = d.do(ctx, func(tx *txn) error {
		r := d.runs[id]
		if r == nil || r.Workspace != ws {
			return nil
		}
		found = true
		return fn(tx, r)
	})
	return found, err
}

// Cancel stops a run: a queued run ends at once; a placed run's agent is
// told to stop it and the run ends Canceled when the agent confirms.
// Cancelling an ended run returns it unchanged.
func (d *Dispatcher) Cancel(ctx context.Context, ws, id, why string) (store.Run, error) {
	var out store.Run
	found, err := d.withLiveRun(ctx, ws, id, func(tx *txn, r *store.Run) error {
		reachable := false
		for _, id := range r.Nodes() {
			if nd := d.nodes[id]; nd != nil && nd.State != store.NodeUnusable && nd.State != store.NodePreempted {
				reachable = true
			}
		}
		switch {
		case r.Status == api.RunQueued || r.Node == "":
			d.finish(tx, r, api.RunCanceled, nil, "Canceled", why)
		case !reachable:
			d.finish(tx, r, api.RunCanceled, nil, "Canceled", why+" (its node was not reachable)")
		default:
			r.CancelRequested = why
			tx.touchRun(r)
			for _, id := range r.Nodes() {
				tx.wakeNode(id)
			}
		}
		out = clone(r)
		return nil
	})
	if err != nil || found {
		return out, err
	}
	return d.st.GetRun(ctx, ws, id)
}

// AddNode records a node before its agent starts (providers name nodes
// before they create them, so a retried create finds the first one).
func (d *Dispatcher) AddNode(ctx context.Context, n store.Node) error {
	return d.do(ctx, func(tx *txn) error {
		nd := d.nodes[n.ID]
		if nd == nil {
			n.State = store.NodeStarting
			nd = &node{Node: n, wake: make(chan struct{}), lastSeen: d.now(), placed: map[string]*store.Run{}}
			d.nodes[n.ID] = nd
			d.sortedIDs = nil
		} else {
			nd.TokenHash, nd.MaxRuns = n.TokenHash, n.MaxRuns
			if nd.State == store.NodeUnusable || nd.State == store.NodePreempted {
				nd.State = store.NodeStarting // a replacement under the same name
			}
		}
		tx.touchNode(nd)
		return nil
	})
}

// Hello records what an agent reports about its node and makes the node
// usable.
func (d *Dispatcher) Hello(ctx context.Context, nodeID string, h api.AgentHello) (store.Node, error) {
	var out store.Node
	err := d.do(ctx, func(tx *txn) error {
		nd := d.nodes[nodeID]
		if nd == nil {
			return api.NotFound("node %q is not known to this server", nodeID)
		}
		nd.Hostname, nd.Cores, nd.MemoryGB, nd.Version, nd.Address, nd.SSH = h.Hostname, h.Cores, h.MemoryGB, h.Version, h.Address, h.SSH
		nd.LastActivity = d.now()
		nd.GPUs = nil
		for _, g := range h.GPUs {
			nd.GPUs = append(nd.GPUs, store.GPU{Index: g.Index, Name: g.Name, UUID: g.UUID, MemoryMB: g.MemoryMB})
		}
		nd.lastSeen, nd.Reason = d.now(), ""
		// Recompute free capacity from what is placed on the node.
		nd.freeCores, nd.freeMem, nd.freeGPUs = nd.Cores, nd.MemoryGB, nil
		for _, g := range nd.GPUs {
			nd.freeGPUs = append(nd.freeGPUs, g.Index)
		}
		for _, r := range nd.placed {
			d.take(nd, r)
		}
		if nd.State == store.NodeLeaving {
			return api.Conflict("node %q is being removed", nodeID)
		}
		nd.State, nd.idleSince = store.NodeIdle, time.Time{}
		d.setNodeBusy(tx, nd)
		tx.touchNode(nd)
		tx.changed(nd.Workspace, nd.Compute)
		tx.schedule = true
		d.log.Info("node ready", "node", nd.ID, "compute", nd.Compute, "cores", nd.Cores, "memory_gb", nd.MemoryGB, "gpus", len(nd.GPUs))
		out = nd.Node
		return nil
	})
	return out, err
}

// Poll is an agent's heartbeat and request for work. It returns what is
// to be done now and a channel closed when there may be more.
func (d *Dispatcher) Poll(ctx context.Context, nodeID string, active []api.AttemptRef, sshSessions int) (api.AgentWork, <-chan struct{}, error) {
	var work api.AgentWork
	var wake <-chan struct{}
	err := d.do(ctx, func(tx *txn) error {
		nd := d.nodes[nodeID]
		if nd == nil {
			return api.NotFound("node %q is not known to this server", nodeID)
		}
		nd.lastSeen = d.now()
		if sshSessions > 0 {
			nd.LastActivity = nd.lastSeen
		}
		if sshSessions != nd.SSHSessions {
			nd.SSHSessions = sshSessions
			tx.touchNode(nd)
			tx.changed(nd.Workspace, nd.Compute)
		}
		if nd.State != store.NodeIdle && nd.State != store.NodeRunning && nd.State != store.NodeLeaving {
			return api.Conflict("node %q must say hello before polling", nodeID)
		}
		reported := map[string]bool{}
		var stillEnding map[api.AttemptRef]bool
		for _, ref := range active {
			if nd.reportedEnd[ref] {
				if stillEnding == nil {
					stillEnding = map[api.AttemptRef]bool{}
				}
				stillEnding[ref] = true
				continue
			}
			r := d.runs[ref.RunID]
			if r == nil || r.Rank(nodeID) < 0 || r.Attempt != ref.Attempt {
				work.Stale = append(work.Stale, ref)
				continue
			}
			reported[ref.RunID] = true
		}
		nd.reportedEnd = stillEnding
		pending := map[string]bool{}
		kept := nd.pending[:0]
		for _, id := range nd.pending {
			if !reported[id] { // an agent that reports an attempt has it
				pending[id] = true
				kept = append(kept, id)
			}
		}
		nd.pending = kept
		for _, r := range nd.placed {
			if reported[r.ID] || pending[r.ID] {
				continue
			}
			part, hasPart := r.Parts[nodeID]
			switch {
			case hasPart && part.Status.Terminal():
				continue // this node's share is done; the others still run
			case !hasPart && (r.Status == api.RunStarting || len(r.Nodes()) > 1):
				nd.pending = append(nd.pending, r.ID) // delivered, but the agent never got it
				d.recovered[r.ID] = true              // it may have sent log lines before losing it
				continue
			}
			d.finish(tx, r, api.RunFailed, nil, "NodeLost", "the agent of node "+nodeID+" restarted and no longer runs this attempt")
		}
		for _, id := range nd.pending {
			r := d.runs[id]
			if r == nil {
				continue
			}
			work.Assignments = append(work.Assignments, d.assignment(ctx, r, nodeID))
		}
		nd.pending = nil
		for _, r := range nd.placed {
			if part := r.Parts[nodeID]; r.CancelRequested != "" && !part.Status.Terminal() {
				work.Cancel = append(work.Cancel, api.CancelOrder{RunID: r.ID, Attempt: r.Attempt, Reason: r.CancelRequested})
			}
		}
		wake = nd.wake
		return nil
	})
	return work, wake, err
}

func (d *Dispatcher) assignment(ctx context.Context, r *store.Run, nodeID string) api.Assignment {
	env := map[string]string{}
	for k, v := range r.Env {
		env[k] = v
	}
	env["PADDOCK_RUN_ID"] = r.ID
	env["PADDOCK_ATTEMPT"] = strconv.Itoa(r.Attempt)
	env["PADDOCK_WORKSPACE"] = r.Workspace
	env["PADDOCK_EXPERIMENT"] = r.Experiment
	env["PADDOCK_API_URL"] = d.opts.APIURL
	env["PADDOCK_RUN_TOKEN"] = d.RunToken(r.ID, r.Attempt)
	gpus := gpusOf(r, nodeID)
	if nd := d.nodes[nodeID]; nd != nil && len(nd.GPUs) > 0 || len(gpus) > 0 {
		env["CUDA_VISIBLE_DEVICES"] = joinInts(gpus)
	}
	rank := max(r.Rank(nodeID), 0)
	procs := max(r.ProcessCountPerNode, 1)
	var hosts []string
	if nodes := r.Nodes(); len(nodes) > 1 || procs > 1 {
		// A distributed run: torch.distributed's variables. With several
		// processes per node the agent starts them, each with its own
		// RANK and LOCAL_RANK.
		addrs := make([]string, len(nodes))
		for i, id := range nodes {
			addrs[i] = id
			if nd := d.nodes[id]; nd != nil && nd.Address != "" {
				addrs[i] = nd.Address
			}
		}
		env["MASTER_ADDR"] = "127.0.0.1"
		if len(nodes) > 1 {
			env["MASTER_ADDR"] = addrs[0]
			env["PADDOCK_HOSTS"] = strings.Join(addrs, ",")
			hosts = addrs
		}
		env["MASTER_PORT"] = strconv.Itoa(masterPort(r.ID, r.Attempt))
		env["WORLD_SIZE"] = strconv.Itoa(max(len(nodes), 1) * procs)
		env["NODE_RANK"] = strconv.Itoa(rank)
		env["RANK"] = strconv.Itoa(rank * procs)
		env["LOCAL_RANK"] = "0"
		env["LOCAL_WORLD_SIZE"] = strconv.Itoa(procs)
	}
	var ack int64
	if d.recovered[r.ID] {
		var err error
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if ack, err = d.st.LogAck(rctx, r.ID, r.Attempt, rank); err != nil {
			d.log.Warn("reading log ack", "run", r.ID, "err", err)
		}
	}
	return api.Assignment{RunID: r.ID, Attempt: r.Attempt, Workspace: r.Workspace, User: r.CreatedBy, Command: r.Command, Env: env,
		Source: r.Source, Environment: r.Environment, Resources: r.Resources, GPUIndices: gpus,
		MaxRunDurationSeconds: r.MaxRunDurationSeconds, Identities: r.Identities, LogAck: ack, RestoreOutputs: r.Attempt > 1, NodeRank: rank,
		Hosts: hosts, Distribution: r.Distribution, ProcessCountPerNode: procs}
}

// masterPort picks the rendezvous port of a multi-node attempt: stable for
// the attempt, spread over 20000-32599 so runs sharing a host rarely meet,
// and below Linux's ephemeral ports (32768 up), which outgoing connections
// take at random; an mpi run's launchers listen on the ports just above it
// (one per node, see internal/agent/launch), so the range leaves room.
func masterPort(runID string, attempt int) int {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", runID, attempt)
	return 20000 + int(h.Sum32()%12600)
}

// Report applies an agent's report about an attempt. A report about an
// attempt that is not current is refused with api.ErrConflict, and the
// agent stops that attempt.
func (d *Dispatcher) Report(ctx context.Context, nodeID string, ref api.AttemptRef, rep api.AttemptReport) error {
	return d.do(ctx, func(tx *txn) error {
		r := d.runs[ref.RunID]
		if r == nil || r.Rank(nodeID) < 0 || r.Attempt != ref.Attempt {
			return errStale(ref)
		}
		if nd := d.nodes[nodeID]; nd != nil {
			nd.lastSeen = d.now()
		}
		if rep.Status.Terminal() {
			if nd := d.nodes[nodeID]; nd != nil {
				if nd.reportedEnd == nil {
					nd.reportedEnd = map[api.AttemptRef]bool{}
				}
				nd.reportedEnd[ref] = true
			}
		}
		if len(r.Nodes()) > 1 {
			return d.reportPart(tx, r, nodeID, rep)
		}
		if r.Parts == nil {
			r.Parts = map[string]store.Part{}
		}
		r.Parts[nodeID] = store.Part{Status: rep.Status}
		a := &r.Attempts[len(r.Attempts)-1]
		switch rep.Status {
		case api.RunPreparing, api.RunRunning, api.RunFinalizing:
			if rank(rep.Status) < rank(r.Status) {
				return nil // an old report arriving late
			}
			r.Status, a.Status = rep.Status, rep.Status
			if rep.Status == api.RunRunning {
				markStarted(tx, r, a)
			}
			tx.touchRun(r)
		case api.RunCompleted, api.RunFailed, api.RunCanceled:
			status, reason := rep.Status, rep.Reason
			if r.CancelRequested != "" && status != api.RunCompleted {
				status, reason = api.RunCanceled, "Canceled"
				if rep.Error == "" {
					rep.Error = r.CancelRequested
				}
			}
			if rep.ExitCode != nil { // it ran, even if its Running report was overtaken
				markStarted(tx, r, a)
			}
			r.Outputs = rep.Outputs
			d.finish(tx, r, status, rep.ExitCode, reason, rep.Error)
		default:
			return api.Invalid("status", "an agent cannot report status %q", rep.Status)
		}
		return nil
	})
}

// reportPart applies one node's report about a multi-node attempt: the run
// runs when its first part runs; one part failing stops the others; the
// attempt ends when every part has, Failed if any part failed.
func (d *Dispatcher) reportPart(tx *txn, r *store.Run, nodeID string, rep api.AttemptReport) error {
	if r.Parts == nil {
		r.Parts = map[string]store.Part{}
	}
	if prev, ok := r.Parts[nodeID]; ok && prev.Status.Terminal() {
		return nil // a retried report
	}
	a := &r.Attempts[len(r.Attempts)-1]
	nodeRank := r.Rank(nodeID)
	switch {
	case !rep.Status.Terminal():
		if rep.Status != api.RunPreparing && rep.Status != api.RunRunning && rep.Status != api.RunFinalizing {
			return api.Invalid("status", "an agent cannot report status %q", rep.Status)
		}
		r.Parts[nodeID] = store.Part{Status: rep.Status}
		if rank(rep.Status) > rank(r.Status) && (rep.Status != api.RunFinalizing || nodeRank == 0) {
			r.Status, a.Status = rep.Status, rep.Status
		}
		if rep.Status == api.RunRunning {
			markStarted(tx, r, a)
		}
		tx.touchRun(r)
		return nil
	}
	r.Parts[nodeID] = store.Part{Status: rep.Status, ExitCode: rep.ExitCode, Error: rep.Error}
	if nodeRank == 0 {
		r.Outputs = rep.Outputs
	}
	mpi := r.Distribution == "mpi"
	switch {
	case mpi && nodeRank > 0:
		// A node that served mpirun: mpirun on rank 0 notices a daemon it
		// lost and ends; its end decides (a daemon may well end before
		// mpirun reports, stopped by it).
	case rep.Status != api.RunCompleted && r.CancelRequested == "":
		// One rank failing ends the attempt: stop the others.
		r.CancelRequested = fmt.Sprintf("rank %d failed: %s", nodeRank, rep.Error)
		for _, id := range r.Nodes() {
			tx.wakeNode(id)
		}
	case mpi && nodeRank == 0 && r.CancelRequested == "":
		// mpirun on rank 0 is the run; the other nodes only served it.
		r.CancelRequested = "mpirun on rank 0 ended"
		for _, id := range r.Nodes() {
			tx.wakeNode(id)
		}
	}
	tx.touchRun(r)
	for _, id := range r.Nodes() {
		if !r.Parts[id].Status.Terminal() {
			return nil
		}
	}
	// Every part has ended: the first failed rank decides, then a cancel;
	// with mpi, mpirun on rank 0 alone when it completed.
	mpiDone := mpi && r.Parts[r.Nodes()[0]].Status == api.RunCompleted
	status, reason := api.RunCompleted, ""
	var exit *int
	msg := ""
	for i, id := range r.Nodes() {
		if mpiDone && i > 0 {
			break
		}
		p := r.Parts[id]
		if p.Status == api.RunFailed && status != api.RunFailed {
			status, reason, exit, msg = api.RunFailed, "NonZeroExit", p.ExitCode, fmt.Sprintf("rank %d: %s", i, p.Error)
		}
	}
	// With mpi, the nodes stopped once mpirun on rank 0 completed did
	// not cancel the run.
	if status == api.RunCompleted && !mpiDone {
		for _, id := range r.Nodes() {
			if p := r.Parts[id]; p.Status == api.RunCanceled {
				status, reason, msg = api.RunCanceled, "Canceled", r.CancelRequested
				break
			}
		}
	}
	if exit == nil && status == api.RunCompleted {
		exit = r.Parts[r.Nodes()[0]].ExitCode
	}
	d.finish(tx, r, status, exit, reason, msg)
	return nil
}

// markStarted records when an attempt (and the run, on its first) started.
func markStarted(tx *txn, r *store.Run, a *api.Attempt) {
	if a.StartedAt == nil {
		a.StartedAt = tx.timeNow()
		if r.StartedAt == nil {
			r.StartedAt = a.StartedAt
		}
	}
}

func rank(s api.RunStatus) int {
	switch s {
	case api.RunQueued:
		return 0
	case api.RunProvisioning:
		return 1
	case api.RunStarting:
		return 2
	case api.RunPreparing:
		return 3
	case api.RunRunning:
		return 4
	case api.RunFinalizing:
		return 5
	}
	return 6
}

// checkNodes fails the runs of nodes that stopped polling.
func (d *Dispatcher) checkNodes(tx *txn) error {
	now := d.now()
	for _, nd := range d.nodes {
		if nd.State == store.NodeUnusable || nd.State == store.NodePreempted || nd.State == store.NodeLeaving || now.Sub(nd.lastSeen) < d.opts.NodeLostAfter {
			continue
		}
		wasStarting := nd.State == store.NodeStarting
		nd.State = store.NodeUnusable
		tx.changed(nd.Workspace, nd.Compute)
		nd.Reason = fmt.Sprintf("no heartbeat for %s", now.Sub(nd.lastSeen).Round(1e9))
		if wasStarting {
			nd.Reason = "its agent never said hello"
		}
		tx.touchNode(nd)
		tx.wakeNode(nd.ID)            // a poll still held ends, so a returning agent says hello at once
		for _, r := range nd.placed { // finish removes r from placed; Go allows that mid-range
			d.finish(tx, r, api.RunFailed, nil, "NodeLost", "node "+nd.ID+" stopped responding ("+nd.Reason+")")
		}
		d.log.Warn("node lost", "node", nd.ID, "reason", nd.Reason)
	}
	return nil
}

// NodeByID returns a node's current record.
func (d *Dispatcher) NodeByID(ctx context.Context, id string) (store.Node, bool) {
	var out store.Node
	var ok bool
	d.do(ctx, func(*txn) error {
		if nd := d.nodes[id]; nd != nil {
			out, ok = nd.Node, true
		}
		return nil
	})
	return out, ok
}

// NodeHasSource reports whether a run placed on a node has the snapshot
// digest as its source: a node's agent may fetch those snapshots only.
func (d *Dispatcher) NodeHasSource(ctx context.Context, nodeID, digest string) bool {
	found := false
	d.do(ctx, func(*txn) error {
		if nd := d.nodes[nodeID]; nd != nil {
			for _, r := range nd.placed {
				found = found || r.Source == digest
			}
		}
		return nil
	})
	return found
}

// NodeBusy reports whether runs are placed on a node.
func (d *Dispatcher) NodeBusy(ctx context.Context, id string) bool {
	busy := false
	d.do(ctx, func(*txn) error {
		if nd := d.nodes[id]; nd != nil {
			busy = len(nd.placed) > 0
		}
		return nil
	})
	return busy
}
