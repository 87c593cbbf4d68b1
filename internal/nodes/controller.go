package nodes

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/faults"
	"github.com/paddock-ml/paddock/internal/notify"
	"github.com/paddock-ml/paddock/internal/policy"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/reconcile"
	"github.com/paddock-ml/paddock/internal/store"
)

// Dispatch is what the controller needs of the dispatcher.
type Dispatch interface {
	ClusterView(ctx context.Context, ws, compute string) ([]Node, []Run, error)
	SetQueueReason(ctx context.Context, ws, compute, reason string) error
	AddNode(ctx context.Context, n store.Node) error
	Drain(ctx context.Context, id string) (bool, error)
	RemoveNode(ctx context.Context, id string) error
	NodeGone(ctx context.Context, id string, preempted bool) error
	NodeEnded(ctx context.Context, id string, preempted bool, why string) error
	SetRunReasons(ctx context.Context, ws string, reasons map[string]string) error
	FailQueued(ctx context.Context, ws, id, reason, msg string) error
	Nodes(ctx context.Context, ws, compute string) ([]store.Node, error)
	Evict(ctx context.Context, id, reason, msg string) error
	TargetLoad(ctx context.Context, ws, compute string) (queued, placed int, err error)
	ActiveRuns(ctx context.Context, ws, compute string) ([]string, error)
	QueuedRuns(ctx context.Context, ws, compute string) ([]store.Run, error)
}

// Reconciler keeps the nodes of one kind of target converging to what the
// target asks: it reads the target, its nodes and its queue, does what is
// needed through the target's provider and the dispatcher, and says when
// to look again. Each kind registers its own (Register); the controller's
// loop only dispatches by kind.
type Reconciler func(ctx context.Context, c *Controller, rec store.Compute) (reconcile.Result, error)

var (
	reconcilersMu sync.RWMutex
	reconcilers   = map[string]Reconciler{}
)

// Register makes a kind's reconciler known; each kind's file calls it from
// init. A duplicate is a bug.
func Register(kind string, r Reconciler) {
	reconcilersMu.Lock()
	defer reconcilersMu.Unlock()
	if _, dup := reconcilers[kind]; dup {
		panic("nodes: reconciler registered twice: " + kind)
	}
	reconcilers[kind] = r
}

func reconcilerFor(kind string) (Reconciler, bool) {
	reconcilersMu.RLock()
	defer reconcilersMu.RUnlock()
	r, ok := reconcilers[kind]
	return r, ok
}

// Controller runs one reconcile loop per target with nodes: the kind's
// reconciler decides, the target's provider realises. It is level-based:
// a key names a target, and every pass starts from what is true now, so a
// restart or a missed event costs nothing but a pass.
type Controller struct {
	Store     store.Store
	Dispatch  Dispatch
	Providers *provider.Registry
	Sizes     *compute.Catalog
	Log       *slog.Logger
	// Clock times idle deadlines, requeues and backoff (default clock.Real).
	Clock clock.Clock
	// ServerURL is where new nodes' agents connect; Servers, when set,
	// gives it instead as it is now (the replicas of a workspace, which
	// come and go).
	ServerURL string
	Servers   func() string
	// HomesDir keeps compute instances' home directories and SSH host keys.
	HomesDir  string
	NewToken  func() string
	TokenHash func(string) string
	// Policy records when the workspace's policy stops an instance (nil:
	// nowhere).
	Policy *policy.Recorder

	queue *reconcile.Queue
}

// Enqueue asks for a pass over the target with this key (store.Key).
func (c *Controller) Enqueue(key string) {
	if c.queue != nil {
		c.queue.Add(key)
	}
}

// Watch subscribes the controller to what starts its passes: a user's
// change to a target, a provisioning transition, a change of a target's
// queue or nodes, a run's end (which frees the nodes made for it).
func (c *Controller) Watch(n *notify.Notifier) {
	for _, t := range []notify.Topic{notify.Targets, notify.Provisioned, notify.Demand, notify.RunEnded} {
		n.Subscribe(t, c.Enqueue)
	}
}

// Init prepares the controller; Run starts it.
func (c *Controller) Init() {
	c.Clock = clock.Or(c.Clock)
	c.queue = reconcile.New("nodes", c.reconcile, c.Log)
	c.queue.MinBackoff = 200 * time.Millisecond
	c.queue.Clock = c.Clock
}

func (c *Controller) now() time.Time { return c.Clock.Now() }

// Run adopts the nodes that survived a restart, follows provider events
// and reconciles every target with nodes until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.adopt(ctx); err != nil {
		c.Log.Error("adopting nodes after the restart", "err", err)
	}
	for _, name := range c.Providers.Names() {
		p, _ := c.Providers.Get(name)
		if w, ok := p.(provider.Watcher); ok {
			go c.follow(ctx, w)
		}
	}
	recs, err := c.Store.ListComputesInStates(ctx, api.StateSucceeded, api.StateUpdating)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if _, ok := reconcilerFor(r.Type); ok {
			c.Enqueue(store.Key(r.Workspace, r.Name))
		}
	}
	c.queue.Run(ctx, 2)
	return nil
}

func (c *Controller) follow(ctx context.Context, w provider.Watcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-w.Events():
			if ev.Kind == provider.Changed {
				c.Enqueue(ev.Target)
				continue
			}
			if err := c.Dispatch.NodeGone(ctx, ev.NodeID, ev.Kind == provider.Preempted); err != nil && ctx.Err() == nil {
				c.Log.Error("recording a node event", "node", ev.NodeID, "kind", ev.Kind, "err", err)
			}
		}
	}
}

// adopt reconciles the nodes the store knows with those the providers
// have: known and alive nodes are kept (their agents reconnect), known
// nodes that are gone are marked so and replaced, unknown live nodes are
// deleted.
func (c *Controller) adopt(ctx context.Context) error {
	nodes, err := c.Store.Nodes(ctx)
	if err != nil {
		return err
	}
	byProvider := map[string]map[string]store.Node{}
	for _, n := range nodes {
		rec, err := c.Store.GetCompute(ctx, n.Workspace, n.Compute)
		if err != nil {
			continue
		}
		name, ok := compute.ProviderOf(rec)
		if !ok {
			continue
		}
		if byProvider[name] == nil {
			byProvider[name] = map[string]store.Node{}
		}
		byProvider[name][n.ID] = n
	}
	for _, name := range c.Providers.Names() {
		prov, _ := c.Providers.Get(name)
		alive, err := prov.List(ctx)
		if err != nil {
			return fmt.Errorf("listing %s nodes: %w", name, err)
		}
		if a, ok := prov.(provider.Adopter); ok && len(byProvider[name]) > 0 {
			alive = append(alive, a.Adopt(ctx, slices.Sorted(maps.Keys(byProvider[name])))...)
		}
		live := map[string]bool{}
		for _, id := range alive {
			live[id] = true
			if _, known := byProvider[name][id]; !known {
				c.Log.Warn("deleting a node the server does not know", "provider", name, "node", id)
				prov.Delete(ctx, id)
			}
		}
		for id := range byProvider[name] {
			if live[id] {
				c.Log.Info("adopted a node that survived the restart", "provider", name, "node", id)
			} else if err := c.Dispatch.NodeGone(ctx, id, false); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Controller) reconcile(ctx context.Context, k string) (reconcile.Result, error) {
	ws, name := store.SplitKey(k)
	rec, err := c.Store.GetCompute(ctx, ws, name)
	if errors.Is(err, api.ErrNotFound) {
		return reconcile.Result{}, c.removeOrphans(ctx, ws, name)
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if rec.State != api.StateSucceeded && rec.State != api.StateUpdating {
		return reconcile.Result{}, nil
	}
	r, ok := reconcilerFor(rec.Type)
	if !ok {
		return reconcile.Result{}, nil
	}
	return r(ctx, c, rec)
}

// provider is the provider of a target's nodes, when this server has it.
func (c *Controller) provider(rec store.Compute) (provider.Provider, bool) {
	name, ok := compute.ProviderOf(rec)
	if !ok {
		return nil, false
	}
	return c.Providers.Get(name)
}

// deleteNode drains a node and, once nothing is placed on it, deletes it.
func (c *Controller) deleteNode(ctx context.Context, prov provider.Provider, id, state string) error {
	// Drain even a node seen as unusable: it may have come back since, with
	// a run placed on it; then it stays, and the next pass decides again.
	ok, err := c.Dispatch.Drain(ctx, id)
	if err != nil || !ok {
		return err
	}
	if err := prov.Delete(ctx, id); err != nil {
		return fmt.Errorf("deleting node %s: %w", id, err)
	}
	c.Log.Info("node removed", "node", id, "was", state)
	return c.Dispatch.RemoveNode(ctx, id)
}

// deleteDead deletes a target's nodes that are lost or preempted, and
// returns the others (leaving ones included).
func (c *Controller) deleteDead(ctx context.Context, prov provider.Provider, nodes []store.Node) ([]store.Node, error) {
	var rest []store.Node
	for _, n := range nodes {
		switch n.State {
		case store.NodeUnusable, store.NodePreempted:
			if err := c.deleteNode(ctx, prov, n.ID, n.State); err != nil {
				return nil, err
			}
		default:
			rest = append(rest, n)
		}
	}
	return rest, nil
}

// launch names a node of rec, records it with a fresh token, and asks the
// provider to start it; a failed start removes what it left. The caller
// fills in n's and spec's resources.
func (c *Controller) launch(ctx context.Context, prov provider.Provider, rec store.Compute, n store.Node, spec provider.NodeSpec) error {
	id := newNodeID(rec)
	token := c.NewToken()
	n.ID, n.Workspace, n.Compute, n.TokenHash, n.CreatedAt = id, rec.Workspace, rec.Name, c.TokenHash(token), c.now()
	spec.ID, spec.Workspace, spec.Compute, spec.Token, spec.ServerURL = id, rec.Workspace, rec.Name, token, c.ServerURL
	if c.Servers != nil {
		spec.ServerURL = c.Servers()
	}
	if err := c.Dispatch.AddNode(ctx, n); err != nil {
		return err
	}
	if err := prov.Create(ctx, spec); err != nil {
		prov.Delete(ctx, id) // whatever a failed create left
		c.Dispatch.RemoveNode(ctx, id)
		return fmt.Errorf("starting node %s of %s with provider %s: %w", id, rec.Name, prov.Name(), err)
	}
	faults.Point("nodes.created")
	return nil
}

// newNodeID names a new node of rec: the target's name and a random
// suffix (a DNS label, as providers name pods and jobs after it).
func newNodeID(rec store.Compute) string {
	b := make([]byte, 4)
	rand.Read(b)
	return strings.ToLower(rec.Name) + "-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// ReleaseNodes removes every node of a target being deleted, and an
// instance's home. A machine its provider cannot reach (or that is not the
// one attached) is let go with a warning rather than keeping the target in
// Deleting forever.
func (c *Controller) ReleaseNodes(ctx context.Context, ws, name, providerName string) error {
	prov, ok := c.Providers.Get(providerName)
	if !ok {
		return nil
	}
	nodes, err := c.Dispatch.Nodes(ctx, ws, name)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nodes {
		if err := prov.Delete(ctx, n.ID); err != nil {
			if !errors.Is(err, api.ErrConflict) && !errors.Is(err, api.ErrUnavailable) {
				errs = append(errs, err)
				continue
			}
			c.Log.Warn("could not clean up a machine on detach; remove ~/.paddock-agent there by hand", "node", n.ID, "err", err)
		}
		errs = append(errs, c.Dispatch.RemoveNode(ctx, n.ID))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if tc, ok := prov.(provider.TargetCloser); ok {
		tc.CloseTarget(ws, name)
	}
	if c.HomesDir != "" { // an instance's home, host key and SSH endpoint go with it
		home := c.homeDir(ws, name)
		return errors.Join(os.RemoveAll(home), os.RemoveAll(home+".ssh_host_key"), os.RemoveAll(home+".ssh_host_key.endpoint"))
	}
	return nil
}

func (c *Controller) homeDir(ws, name string) string {
	return filepath.Join(c.HomesDir, ws, strings.ToLower(name))
}

// Preempt injects a preemption of one of a target's nodes (tests, demos).
func (c *Controller) Preempt(ctx context.Context, ws, name, nodeID string) error {
	rec, err := c.Store.GetCompute(ctx, ws, name)
	if err != nil {
		return err
	}
	if !compute.CanPreempt(rec) {
		return api.Invalid("name", "%s is a %s target; only cluster nodes can be preempted", rec.Name, rec.Type)
	}
	nodes, err := c.Dispatch.Nodes(ctx, ws, name)
	if err != nil {
		return err
	}
	found := false
	for _, n := range nodes {
		found = found || n.ID == nodeID
	}
	if !found {
		return api.NotFound("cluster %s has no node %q (`paddock compute nodes %s`)", rec.Name, nodeID, rec.Name)
	}
	provName, _ := compute.ProviderOf(rec)
	prov, ok := c.Providers.Get(provName)
	pre, can := prov.(provider.Preempter)
	if !ok || !can {
		return api.Invalid("name", "provider %s cannot inject preemptions", provName)
	}
	return pre.Preempt(ctx, nodeID)
}

// removeOrphans removes nodes whose target is gone: a pass that created a
// node while the target was being deleted leaves one behind.
func (c *Controller) removeOrphans(ctx context.Context, ws, name string) error {
	nodes, err := c.Dispatch.Nodes(ctx, ws, name)
	if err != nil || len(nodes) == 0 {
		return err
	}
	var errs []error
	for _, name := range c.Providers.Names() {
		prov, _ := c.Providers.Get(name)
		live, err := prov.List(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		have := map[string]bool{}
		for _, id := range live {
			have[id] = true
		}
		for _, n := range nodes {
			if have[n.ID] {
				c.Log.Warn("removing a node of a deleted target", "node", n.ID, "provider", name)
				errs = append(errs, prov.Delete(ctx, n.ID))
			}
		}
	}
	for _, n := range nodes {
		errs = append(errs, c.Dispatch.RemoveNode(ctx, n.ID))
	}
	return errors.Join(errs...)
}

// checkJobs notices nodes whose batch jobs the scheduler ended on its own
// (time limit, preemption, node failure) and records them as gone, so
// their runs are requeued (preempted) or fail (NodeLost) at once.
func (c *Controller) checkJobs(ctx context.Context, jobs provider.JobStates, ids []string) error {
	for _, id := range ids {
		state, why, err := jobs.JobState(ctx, id)
		if err != nil {
			return err
		}
		switch state {
		case "", "PENDING", "CONFIGURING", "RUNNING", "COMPLETING":
			continue
		}
		c.Log.Warn("the scheduler ended a pilot job", "node", id, "state", state, "reason", why)
		if err := c.Dispatch.NodeEnded(ctx, id, state == "PREEMPTED", jobEnded(state, why)); err != nil {
			return err
		}
	}
	return nil
}

// updateStatus writes a target's live status when it changed. It reads
// the target afresh: one deleted (or being deleted) during the pass gets
// nothing; one changed in a way still matters (still, when set, says
// whether the change left what the pass read as it was) gets another pass
// instead; a write that lost the race with a user's change likewise.
func (c *Controller) updateStatus(ctx context.Context, ws, name string, status []byte, still func(cur store.Compute) bool) (reconcile.Result, error) {
	rec, err := c.Store.GetCompute(ctx, ws, name)
	switch {
	case errors.Is(err, api.ErrNotFound):
		return reconcile.Result{}, nil // deleted during the pass (a run's own cluster, when its run ends)
	case err != nil:
		return reconcile.Result{}, err
	case rec.State == api.StateDeleting:
		return reconcile.Result{}, nil
	case still != nil && !still(rec):
		return reconcile.Again, nil
	case string(rec.Status) == string(status):
		return reconcile.Result{}, nil
	}
	rec.Status = status
	err = c.Store.UpdateCompute(ctx, &rec)
	switch {
	case errors.Is(err, api.ErrConflict):
		return reconcile.Again, nil // changed since it was read: start from what is true now
	case errors.Is(err, api.ErrNotFound):
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, err
}

// jobEnded says how a node's batch job ended, for the node's reason and
// its runs' error.
func jobEnded(state, why string) string {
	if why == "" || why == "None" {
		return "its job ended " + state
	}
	return "its job ended " + state + ": " + why
}
