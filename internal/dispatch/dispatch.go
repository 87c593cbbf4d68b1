// Package dispatch owns the state of runs and nodes while the server runs.
//
// One goroutine (the loop) applies every change — submissions, cancels,
// agent polls and reports, lost nodes — to an in-memory view, places queued
// runs with the scheduler, and commits all changes of a batch in one
// transaction (group commit) before anyone is told. Callers send operations
// and wait for their results; operations that arrive together share one
// commit, which is what makes many state changes per second durable.
//
//	submit / cancel / agent poll / agent report / tick
//	        │  ops channel
//	        ▼
//	   loop: apply ops → scheduler.Place → store.SaveBatch (one tx)
//	        │
//	        ├─► reply to callers
//	        └─► wake agents' long-polls, notify log/status followers
//
// The store stays the truth: on start (and after a failed commit) the view
// is rebuilt from it, and agents re-announce what they run on their next
// poll, so a restart loses nothing.
package dispatch

import (
	"context"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/faults"
	"github.com/paddock-ml/paddock/internal/notify"
	"github.com/paddock-ml/paddock/internal/policy"
	"github.com/paddock-ml/paddock/internal/scheduler"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/store"
)

// Options tune the dispatcher.
type Options struct {
	// NodeLostAfter is how long a node may go without polling before its
	// runs fail with reason NodeLost.
	NodeLostAfter time.Duration
	// APIURL is given to runs as PADDOCK_API_URL.
	APIURL string
	// Notifier is told (after the commit, outside the loop) the key of
	// every target whose queue or nodes changed (notify.Demand) and of
	// every target where a run ended (notify.RunEnded).
	Notifier *notify.Notifier
	// MaxPreemptions is how many times a run is restarted after its node
	// was preempted before it fails (default 3).
	MaxPreemptions int
	// Policy records when a run is stopped at the workspace policy's
	// max_run_duration_seconds (nil: nowhere). It is told after the
	// commit, from the loop.
	Policy *policy.Recorder
}

// Dispatcher is the run and node state machine.
type Dispatcher struct {
	st    store.Store
	box   *secret.Box
	log   *slog.Logger
	clock clock.Clock
	opts  Options

	ops chan *op

	// Owned by the loop goroutine.
	runs   map[string]*store.Run // runs that have not ended
	queues map[string][]*store.Run
	nodes  map[string]*node
	seq    int64
	// recovered runs are delivered again (after a restart, or to an agent
	// that lost them): their agent may already have sent log lines, so the
	// assignment carries the stored log ack.
	recovered map[string]bool
	sortedIDs []string // see nodeOrder

	watchMu  sync.Mutex
	watchers map[string]chan struct{} // closed when the run changes

	tokens nodeTokens // see NodeByTokenHash
}

// node is a node's live state.
type node struct {
	store.Node
	freeCores, freeMem float64
	freeGPUs           []int
	pending            []string              // runs assigned and not yet delivered
	placed             map[string]*store.Run // runs whose current attempt is on this node
	wake               chan struct{}         // closed when there is something to deliver
	lastSeen           time.Time
	idleSince          time.Time // when it last became idle
	// reportedEnd holds the attempts whose end this node's agent reported:
	// a poll sent (or held) before the agent heard its report was stored
	// still lists them as active, which is no reason to call them stale.
	// A poll that no longer lists one forgets it.
	reportedEnd map[api.AttemptRef]bool
	key         string // store.Key of its workspace and target, made once
}

// target is the store.Key of the node's workspace and target.
func (n *node) target() string {
	if n.key == "" {
		n.key = store.Key(n.Workspace, n.Compute)
	}
	return n.key
}

type op struct {
	fn   func(tx *txn) error
	done chan error
	// state is opQueued until the loop takes the op (opTaken) or its
	// caller gives up waiting first (opAbandoned); an abandoned op is not
	// run, so fn never writes to a caller that has returned.
	state atomic.Int32
}

const (
	opQueued int32 = iota
	opTaken
	opAbandoned
)

// txn collects what a batch changed.
type txn struct {
	d        *Dispatcher
	runs     map[string]*store.Run
	nodes    map[string]*node
	delNodes []string
	wake     map[string]bool
	schedule bool
	clusters map[string]bool // targets whose demand or nodes changed
	ended    [][2]string     // workspace and target of runs that ended
	policy   []policy.Event  // policies that stopped runs
	placed   []func()        // run after the batch's placements, before its commit
}

// changed notes that a target's queue or nodes changed, so its autoscaler
// looks again.
func (tx *txn) changed(ws, compute string) { tx.clusters[store.Key(ws, compute)] = true }

func (tx *txn) touchRun(r *store.Run) { tx.runs[r.ID] = r }
func (tx *txn) touchNode(n *node)     { tx.nodes[n.ID] = n }
func (tx *txn) wakeNode(id string)    { tx.wake[id] = true }
func (tx *txn) timeNow() *time.Time   { t := tx.d.now(); return &t }

// afterPlacement runs fn in the loop once the batch's runs are placed (and
// before its commit), so an op can answer with what placement made of it
// without waiting for another batch.
func (tx *txn) afterPlacement(fn func()) { tx.placed = append(tx.placed, fn) }

// New returns a dispatcher; Run loads state and starts the loop. clk
// times the loop's node checks and stamps every change (nil: clock.Real).
func New(st store.Store, box *secret.Box, log *slog.Logger, clk clock.Clock, opts Options) *Dispatcher {
	if opts.NodeLostAfter == 0 {
		opts.NodeLostAfter = 60 * time.Second
	}
	if opts.MaxPreemptions == 0 {
		opts.MaxPreemptions = 3
	}
	return &Dispatcher{st: st, box: box, log: log, clock: clock.Or(clk), opts: opts,
		ops: make(chan *op, 1024), watchers: map[string]chan struct{}{}}
}

// SetAPIURL changes the server URL runs are given (PADDOCK_API_URL); call
// it before Run.
func (d *Dispatcher) SetAPIURL(url string) { d.opts.APIURL = url }

// now is the time of a change.
func (d *Dispatcher) now() time.Time { return d.clock.Now() }

// Load rebuilds the in-memory view from the store. It must be called
// before Run.
func (d *Dispatcher) Load(ctx context.Context) error {
	active, err := d.st.ActiveRuns(ctx)
	if err != nil {
		return err
	}
	nodes, err := d.st.Nodes(ctx)
	if err != nil {
		return err
	}
	seq, err := d.st.MaxRunSeq(ctx)
	if err != nil {
		return err
	}
	d.seq = seq
	for _, old := range d.nodes { // wake polls held on the view being replaced
		close(old.wake)
	}
	d.runs, d.queues, d.nodes = map[string]*store.Run{}, map[string][]*store.Run{}, map[string]*node{}
	d.sortedIDs = nil
	d.recovered = map[string]bool{}
	now := d.now()
	for _, n := range nodes {
		// A grace period after a restart: heartbeats and idle timers start now.
		nd := &node{Node: n, wake: make(chan struct{}), lastSeen: now, idleSince: now, placed: map[string]*store.Run{}}
		nd.freeCores, nd.freeMem = n.Cores, n.MemoryGB
		for _, g := range n.GPUs {
			nd.freeGPUs = append(nd.freeGPUs, g.Index)
		}
		d.nodes[n.ID] = nd
	}
	d.tokens.reset(d.nodes)
	for i := range active {
		r := &active[i]
		d.runs[r.ID] = r
		if r.Interactive {
			continue // its client ends it; nothing is placed
		}
		if r.Status == api.RunQueued || r.Node == "" {
			d.enqueue(r)
			continue
		}
		for _, id := range r.Nodes() {
			nd := d.nodes[id]
			if nd == nil {
				continue
			}
			d.allocate(nd, r)
			if _, reported := r.Parts[id]; !reported && (r.Status == api.RunStarting || len(r.Nodes()) > 1) {
				nd.pending = append(nd.pending, r.ID) // redeliver: the agent may never have seen it
			}
			d.recovered[r.ID] = true
		}
	}
	return nil
}

// clone copies a run for a caller outside the loop: the attempts and parts,
// which the loop changes in place, are the copy's own.
func clone(r *store.Run) store.Run {
	c := *r
	c.Attempts = slices.Clone(r.Attempts)
	c.Parts = maps.Clone(r.Parts)
	return c
}

// A target's queue is kept in Seq order (submission order; a requeued
// run goes back to its place). It may hold tens of thousands of runs, so
// both ends are cheap: a new run is appended, the head is resliced, and
// a run is found by binary search. A change elsewhere copies the slice,
// so a loop ranging over the old one is not disturbed.
func (d *Dispatcher) enqueue(r *store.Run) {
	k := store.Key(r.Workspace, r.Compute)
	q := d.queues[k]
	i := sort.Search(len(q), func(j int) bool { return q[j].Seq > r.Seq }) // after runs of the same Seq
	if i == len(q) {
		d.queues[k] = append(q, r)
		return
	}
	d.queues[k] = slices.Concat(q[:i], []*store.Run{r}, q[i:])
}

func (d *Dispatcher) dequeue(r *store.Run) {
	k := store.Key(r.Workspace, r.Compute)
	q := d.queues[k]
	i := sort.Search(len(q), func(j int) bool { return q[j].Seq >= r.Seq })
	for i < len(q) && q[i].Seq == r.Seq && q[i].ID != r.ID {
		i++
	}
	if i == len(q) || q[i].ID != r.ID {
		return // not queued: a placed run that ended
	}
	if i == 0 {
		q = q[1:]
	} else {
		q = slices.Concat(q[:i], q[i+1:])
	}
	if len(q) == 0 {
		delete(d.queues, k)
		return
	}
	d.queues[k] = q
}

// gpusOf returns the GPU indices the current attempt holds on a node.
func gpusOf(r *store.Run, node string) []int {
	n := len(r.Attempts)
	if n == 0 {
		return nil
	}
	if g, ok := r.Attempts[n-1].NodeGPUs[node]; ok {
		return g
	}
	if node == r.Node {
		return r.Attempts[n-1].GPUs
	}
	return nil
}

// releaseAll frees what r holds on every node of its attempt.
func (d *Dispatcher) releaseAll(tx *txn, r *store.Run) {
	for _, id := range r.Nodes() {
		if nd := d.nodes[id]; nd != nil {
			nd.LastActivity = d.now()
			d.release(nd, r)
			d.setNodeBusy(tx, nd)
		}
	}
}

func (d *Dispatcher) allocate(nd *node, r *store.Run) {
	nd.placed[r.ID] = r
	d.take(nd, r)
}

// take subtracts what r holds from the node's free capacity.
func (d *Dispatcher) take(nd *node, r *store.Run) {
	nd.freeCores -= r.Resources.Cores
	nd.freeMem -= r.Resources.MemoryGB
	held := map[int]bool{}
	for _, g := range gpusOf(r, nd.ID) {
		held[g] = true
	}
	kept := nd.freeGPUs[:0]
	for _, g := range nd.freeGPUs {
		if !held[g] {
			kept = append(kept, g)
		}
	}
	nd.freeGPUs = kept
}

func (d *Dispatcher) release(nd *node, r *store.Run) {
	if _, held := nd.placed[r.ID]; !held {
		return // never release twice
	}
	delete(nd.placed, r.ID)
	nd.freeCores += r.Resources.Cores
	nd.freeMem += r.Resources.MemoryGB
	nd.freeGPUs = append(nd.freeGPUs, gpusOf(r, nd.ID)...)
	sort.Ints(nd.freeGPUs)
	for i, id := range nd.pending {
		if id == r.ID {
			nd.pending = append(nd.pending[:i:i], nd.pending[i+1:]...)
			break
		}
	}
}

// Run processes operations until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	tick := d.clock.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var first *op
		select {
		case <-ctx.Done():
			return
		case first = <-d.ops:
		case <-tick.C():
			first = &op{fn: d.checkNodes}
		}
		batch := []*op{first}
	drain:
		for len(batch) < 512 {
			select {
			case o := <-d.ops:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		d.apply(ctx, batch)
	}
}

func (d *Dispatcher) apply(ctx context.Context, batch []*op) {
	tx := &txn{d: d, runs: map[string]*store.Run{}, nodes: map[string]*node{}, wake: map[string]bool{}, clusters: map[string]bool{}}
	errs := make([]error, len(batch))
	for i, o := range batch {
		if o.done != nil && !o.state.CompareAndSwap(opQueued, opTaken) {
			continue // its caller has gone: it returned ctx.Err() for it
		}
		errs[i] = o.fn(tx)
	}
	if tx.schedule {
		d.schedule(tx)
	}
	for _, fn := range tx.placed {
		fn()
	}
	err := d.commit(ctx, tx)
	if err == nil && len(tx.runs) > 0 {
		faults.Point("dispatch.commit")
	}
	if err != nil {
		d.log.Error("committing run state failed; reloading from the store", "err", err)
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		if lerr := d.Load(ctx); lerr != nil {
			d.log.Error("reloading run state failed", "err", lerr)
		}
	} else {
		d.tokens.update(tx.nodes, tx.delNodes)
		for id := range tx.wake {
			if nd := d.nodes[id]; nd != nil {
				close(nd.wake)
				nd.wake = make(chan struct{})
			}
		}
		for id := range tx.runs {
			d.notify(id)
		}
		for key := range tx.clusters {
			d.opts.Notifier.Publish(notify.Demand, key)
		}
		for _, e := range tx.ended {
			d.opts.Notifier.Publish(notify.RunEnded, store.Key(e[0], e[1]))
		}
		for _, ev := range tx.policy {
			d.opts.Policy.Fire(ctx, ev)
		}
	}
	for i, o := range batch {
		if o.done != nil {
			o.done <- errs[i]
		}
	}
}

func (d *Dispatcher) commit(ctx context.Context, tx *txn) error {
	if len(tx.runs) == 0 && len(tx.nodes) == 0 && len(tx.delNodes) == 0 {
		return nil
	}
	runs := make([]store.Run, 0, len(tx.runs))
	for _, r := range tx.runs {
		runs = append(runs, *r)
	}
	nodes := make([]store.Node, 0, len(tx.nodes))
	for _, n := range tx.nodes {
		nodes = append(nodes, n.Node)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return d.st.SaveBatch(ctx, runs, nodes, tx.delNodes)
}

// do runs fn in the loop and waits for its commit. When ctx ends first,
// fn is not run, unless the loop has already taken it: then do waits for
// it, since fn writes its results into the caller's variables.
func (d *Dispatcher) do(ctx context.Context, fn func(tx *txn) error) error {
	o := &op{fn: fn, done: make(chan error, 1)}
	select {
	case d.ops <- o:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		if o.state.CompareAndSwap(opQueued, opAbandoned) {
			return ctx.Err()
		}
		return <-o.done
	}
}

// Watch returns a channel closed at the next change of the run (status or
// logs); callers re-read and watch again.
func (d *Dispatcher) Watch(runID string) <-chan struct{} {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	ch, ok := d.watchers[runID]
	if !ok {
		ch = make(chan struct{})
		d.watchers[runID] = ch
	}
	return ch
}

// notify wakes the run's watchers.
func (d *Dispatcher) notify(runID string) {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	if ch, ok := d.watchers[runID]; ok {
		close(ch)
		delete(d.watchers, runID)
	}
}

// NotifyLogs tells followers of a run that lines arrived.
func (d *Dispatcher) NotifyLogs(runID string) { d.notify(runID) }

// NotifyAll wakes every watcher: after changes may have been missed (a
// replica that lost its notifications for a while).
func (d *Dispatcher) NotifyAll() {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	for id, ch := range d.watchers {
		close(ch)
		delete(d.watchers, id)
	}
}

// nodeOrder is the node ids sorted, cached until the set of nodes changes.
func (d *Dispatcher) nodeOrder() []string {
	if d.sortedIDs == nil {
		d.sortedIDs = make([]string, 0, len(d.nodes))
		for id := range d.nodes {
			d.sortedIDs = append(d.sortedIDs, id)
		}
		sort.Strings(d.sortedIDs)
	}
	return d.sortedIDs
}

// schedule places queued runs on free nodes.
func (d *Dispatcher) schedule(tx *txn) {
	if len(d.queues) == 0 {
		return
	}
	keys := make([]string, 0, len(d.queues))
	for k := range d.queues {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var queue []scheduler.Request
	// smallest is, per target, the least any of its queued runs asks of a
	// node: a node without that much free can take none of them.
	smallest := make(map[string]scheduler.Request, len(keys))
	for _, k := range keys {
		// Placements per pass are bounded by free capacity; the head of
		// each queue is enough.
		q := d.queues[k]
		least := scheduler.Request{Cores: math.Inf(1), MemoryGB: math.Inf(1), GPUs: math.MaxInt}
		for _, r := range q[:min(len(q), 256)] {
			req := scheduler.Request{RunID: r.ID, Target: k, Nodes: max(r.NodeCount, 1),
				Cores: r.Resources.Cores, MemoryGB: r.Resources.MemoryGB, GPUs: r.Resources.GPUs}
			queue = append(queue, req)
			least.Cores, least.MemoryGB, least.GPUs = min(least.Cores, req.Cores), min(least.MemoryGB, req.MemoryGB), min(least.GPUs, req.GPUs)
		}
		smallest[k] = least
	}
	// Only nodes of targets with queued runs that have room for one, in a
	// stable (id) order. Where every run has a node of its own (Slurm
	// pilots), a run whose node is not ready must not hold up the others.
	var free []scheduler.Node
	pinned := map[string]bool{}
	for _, id := range d.nodeOrder() {
		nd := d.nodes[id]
		if nd.State != store.NodeIdle && nd.State != store.NodeRunning {
			continue
		}
		target := nd.target()
		least, queued := smallest[target]
		if queued && nd.Pin != "" {
			pinned[target] = true
		}
		if !queued || !scheduler.FitsIn(least.Cores, least.MemoryGB, least.GPUs, nd.freeCores, nd.freeMem, len(nd.freeGPUs)) ||
			nd.MaxRuns > 0 && len(nd.placed) >= nd.MaxRuns {
			continue
		}
		free = append(free, scheduler.Node{ID: nd.ID, Target: target,
			FreeCores: nd.freeCores, FreeMemGB: nd.freeMem, FreeGPUs: nd.freeGPUs,
			Limited: nd.MaxRuns > 0, FreeSlots: nd.MaxRuns - len(nd.placed), Pin: nd.Pin})
	}
	for i := range queue {
		queue[i].NoBlock = pinned[queue[i].Target]
	}
	placed := scheduler.Place(queue, free)
	defer func() {
		if len(placed) > 0 {
			faults.Point("dispatch.place")
		}
	}()
	for _, p := range placed {
		r := d.runs[p.RunID]
		d.dequeue(r)
		r.Attempt++
		r.Node = p.Nodes[0]
		r.Status, r.StatusReason, r.Parts, r.CancelRequested = api.RunStarting, "", nil, ""
		a := api.Attempt{Number: r.Attempt, Node: r.Node, Status: api.RunStarting, GPUs: p.GPUs[r.Node]}
		if len(p.Nodes) > 1 {
			a.Nodes = p.Nodes
			if len(p.GPUs) > 0 {
				a.NodeGPUs = p.GPUs
			}
		}
		r.Attempts = append(r.Attempts, a)
		for _, id := range p.Nodes {
			nd := d.nodes[id]
			d.allocate(nd, r)
			nd.pending = append(nd.pending, r.ID)
			d.setNodeBusy(tx, nd)
			tx.wakeNode(nd.ID)
		}
		tx.touchRun(r)
	}
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// setNodeBusy recomputes idle/running from the node's allocations.
func (d *Dispatcher) setNodeBusy(tx *txn, nd *node) {
	if nd.State != store.NodeIdle && nd.State != store.NodeRunning {
		return
	}
	state := store.NodeIdle
	if len(nd.placed) > 0 {
		state = store.NodeRunning
	}
	if nd.State != state {
		nd.State = state
		tx.touchNode(nd)
		tx.changed(nd.Workspace, nd.Compute)
	}
	if state == store.NodeIdle && nd.idleSince.IsZero() {
		nd.idleSince = d.now()
	} else if state == store.NodeRunning {
		nd.idleSince = time.Time{}
	}
}

// finish ends the current attempt of r and the run itself.
func (d *Dispatcher) finish(tx *txn, r *store.Run, status api.RunStatus, exit *int, reason, msg string) {
	now := d.now()
	if status == api.RunCompleted && r.FailRequested != "" { // the run said it failed
		status, reason, msg = api.RunFailed, ReasonMarkedFailed, r.FailRequested
	}
	if n := len(r.Attempts); n > 0 {
		a := &r.Attempts[n-1]
		a.Status, a.EndedAt, a.ExitCode, a.Reason, a.Error = status, &now, exit, reason, msg
	}
	r.Status, r.ExitCode, r.Error, r.EndedAt = status, exit, msg, &now
	r.StatusReason = reason
	if reason == reasonMaxRunDuration && r.MaxRunDurationFromPolicy {
		tx.policy = append(tx.policy, policy.Event{Workspace: r.Workspace, Policy: policy.NameMaxRunDuration, Action: "stopped",
			Compute: r.Compute, Run: r.ID, User: r.CreatedBy, Limit: strconv.FormatInt(r.MaxRunDurationSeconds, 10),
			Message: "the run asked for no max_run_duration_seconds and was stopped at the workspace policy's " + strconv.FormatInt(r.MaxRunDurationSeconds, 10) + " s"})
	}
	r.CancelRequested = ""
	delete(d.runs, r.ID)
	delete(d.recovered, r.ID)
	if !r.Interactive { // an interactive run has no target
		tx.ended = append(tx.ended, [2]string{r.Workspace, r.Compute})
	}
	d.releaseAll(tx, r)
	d.dequeue(r)
	tx.touchRun(r)
	tx.schedule = true
}

// reasonMaxRunDuration is the reason of an attempt its agent stopped at
// max_run_duration_seconds.
const reasonMaxRunDuration = "MaxRunDurationExceeded"

func errStale(ref api.AttemptRef) error {
	return api.Conflict("attempt %d of run %s is no longer current", ref.Attempt, ref.RunID)
}
