package autoscaler

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/quota"
	"github.com/paddock-ml/paddock/internal/reconcile"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/sshx"
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
	Nodes(ctx context.Context, ws, compute string) ([]store.Node, error)
	Evict(ctx context.Context, id, reason, msg string) error
	TargetLoad(ctx context.Context, ws, compute string) (queued, placed int, err error)
	ActiveRuns(ctx context.Context, ws, compute string) ([]string, error)
	QueuedRuns(ctx context.Context, ws, compute string) ([]store.Run, error)
}

// Controller runs one reconcile loop per cluster: it reads the cluster's
// settings, nodes and queue, asks Decide what to do, and does it through
// the cluster's node provider. It is level-based: a key names a cluster,
// and every pass starts from what is true now, so a restart or a missed
// event costs nothing but a pass.
type Controller struct {
	Store     store.Store
	Dispatch  Dispatch
	Providers *provider.Registry
	Sizes     *compute.Catalog
	Log       *slog.Logger
	Now       func() time.Time
	// ServerURL is where new nodes' agents connect.
	ServerURL string
	// HomesDir keeps compute instances' home directories and SSH host keys.
	HomesDir string
	// Secrets opens a target's write-only secrets (for SSH credentials).
	Secrets   func(rec store.Compute) (map[string]secret.Value, error)
	NewToken  func() string
	TokenHash func(string) string

	queue *reconcile.Queue
}

// Enqueue asks for a pass over the cluster with this key (workspace/name).
func (c *Controller) Enqueue(key string) {
	if c.queue != nil {
		c.queue.Add(key)
	}
}

// Init prepares the controller; Run starts it.
func (c *Controller) Init() {
	c.queue = reconcile.New("autoscaler", c.reconcile, c.Log)
	c.queue.MinBackoff = 200 * time.Millisecond
}

// Run adopts the nodes that survived a restart, follows provider events
// and reconciles every cluster until ctx ends.
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
		if r.Type == "cluster" || r.Type == "instance" || r.Type == "remote" || r.Type == "slurm" {
			c.Enqueue(key(r.Workspace, r.Name))
		}
	}
	c.queue.Run(ctx, 2)
	return nil
}

func key(ws, name string) string { return ws + "/" + strings.ToLower(name) }

func (c *Controller) follow(ctx context.Context, w provider.Watcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-w.Events():
			if err := c.Dispatch.NodeGone(ctx, ev.NodeID, ev.Kind == "preempted"); err != nil && ctx.Err() == nil {
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
		if err != nil || rec.Type != "cluster" && rec.Type != "instance" && rec.Type != "remote" && rec.Type != "slurm" {
			continue
		}
		p := compute.ClusterProperties{Provider: "local"}
		json.Unmarshal(rec.Properties, &p)
		switch rec.Type {
		case "remote":
			p.Provider = "ssh"
		case "slurm":
			p.Provider = "slurm"
		}
		if byProvider[p.Provider] == nil {
			byProvider[p.Provider] = map[string]store.Node{}
		}
		byProvider[p.Provider][n.ID] = n
	}
	for _, name := range c.Providers.Names() {
		prov, _ := c.Providers.Get(name)
		alive, err := prov.List(ctx)
		if err != nil {
			return fmt.Errorf("listing %s nodes: %w", name, err)
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

func (c *Controller) reconcile(ctx context.Context, k string) error {
	ws, name, _ := strings.Cut(k, "/")
	rec, err := c.Store.GetCompute(ctx, ws, name)
	if errors.Is(err, api.ErrNotFound) {
		return c.removeOrphans(ctx, ws, name)
	}
	if err != nil {
		return err
	}
	if rec.State != api.StateSucceeded && rec.State != api.StateUpdating {
		return nil
	}
	switch rec.Type {
	case "instance":
		return c.reconcileInstance(ctx, k, rec)
	case "remote":
		return c.reconcileRemote(ctx, rec)
	case "slurm":
		return c.reconcileSlurm(ctx, k, rec)
	}
	if rec.Type != "cluster" {
		return nil
	}
	var p compute.ClusterProperties
	if err := json.Unmarshal(rec.Properties, &p); err != nil {
		return reconcile.Terminal(err)
	}
	prov, ok := c.Providers.Get(p.Provider)
	if !ok {
		return nil
	}
	size, ok := c.Sizes.Find(p.VMSize)
	if !ok {
		return reconcile.Terminal(fmt.Errorf("cluster %s: size %s is no longer in the catalog", rec.Name, p.VMSize))
	}
	nodes, queue, err := c.Dispatch.ClusterView(ctx, ws, rec.Name)
	if err != nil {
		return err
	}
	quotaNodes, err := c.quotaNodes(ctx, ws, rec.Name, p, size, nodes)
	if err != nil {
		return err
	}
	cl := Cluster{Key: k, MinNodes: *p.MinNodes, MaxNodes: *p.MaxNodes,
		IdleAfter: time.Duration(*p.IdleSecondsBeforeScaledown) * time.Second,
		NodeCores: float64(size.Cores), NodeMemGB: size.MemoryGB, NodeGPUs: size.GPUs, QuotaNodes: quotaNodes}
	var freeHosts []store.Compute
	if p.Provider == "ssh" {
		// A node per pool host: the cluster can have what it holds plus the
		// pool's free hosts.
		if freeHosts, err = c.freePoolHosts(ctx, ws, p.From); err != nil {
			return err
		}
		own := 0
		for _, n := range nodes {
			if n.State != NodeLeaving {
				own++
			}
		}
		cl.MaxNodes = min(cl.MaxNodes, own+len(freeHosts))
		cl.MinNodes = min(cl.MinNodes, cl.MaxNodes)
	}
	var slurmFrom *store.Compute
	if p.Provider == "slurm" {
		// Nodes are pilot jobs submitted through the attached slurm target.
		from, err := c.Store.GetCompute(ctx, ws, p.From)
		if err != nil {
			return err
		}
		slurmFrom = &from
		if err := c.checkPilots(ctx, prov, nodes); err != nil {
			return err
		}
		if len(nodes) > 0 {
			c.queue.AddAfter(k, time.Second) // Slurm is polled while pilots exist
		}
	}
	now := c.Now()
	dec := Decide(cl, nodes, queue, now)
	states := map[string]string{}
	for _, n := range nodes {
		states[n.ID] = n.State
	}
	var errs []error
	// The queue learns why it waits before the nodes are made: starting
	// one over SSH can take a while (the agent binary is copied).
	reason := dec.Reason
	if reason == "" && len(queue) > 0 {
		for _, n := range nodes {
			if n.State == NodeStarting {
				reason = "waiting for starting nodes to be ready"
				break
			}
		}
	}
	if err := c.Dispatch.SetQueueReason(ctx, ws, rec.Name, reason); err != nil {
		errs = append(errs, err)
	}
	for _, id := range dec.Delete {
		errs = append(errs, c.deleteNode(ctx, prov, id, states[id]))
	}
	for i := range dec.Create {
		var host *store.Compute
		switch p.Provider {
		case "ssh":
			if i >= len(freeHosts) {
				break
			}
			host = &freeHosts[i]
		case "slurm":
			host = slurmFrom
		}
		if p.Provider == "ssh" && host == nil {
			break
		}
		if err := c.createNode(ctx, prov, rec, p, size, host); err != nil {
			errs = append(errs, err)
			break
		}
	}
	if err := c.writeStatus(ctx, ws, rec.Name, dec); err != nil {
		errs = append(errs, err)
	}
	if !dec.NextCheck.IsZero() {
		c.queue.AddAfter(k, max(dec.NextCheck.Sub(now), 10*time.Millisecond))
	}
	return errors.Join(errs...)
}

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

// launch names a node of rec, records it with a fresh token, and asks the
// provider to start it; a failed start removes what it left. The caller
// fills in n's and spec's resources.
func (c *Controller) launch(ctx context.Context, prov provider.Provider, rec store.Compute, n store.Node, spec provider.NodeSpec) error {
	b := make([]byte, 4)
	rand.Read(b)
	id := strings.ToLower(rec.Name) + "-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	token := c.NewToken()
	n.ID, n.Workspace, n.Compute, n.TokenHash, n.CreatedAt = id, rec.Workspace, rec.Name, c.TokenHash(token), c.Now()
	spec.ID, spec.Workspace, spec.Compute, spec.Token, spec.ServerURL = id, rec.Workspace, rec.Name, token, c.ServerURL
	if err := c.Dispatch.AddNode(ctx, n); err != nil {
		return err
	}
	if err := prov.Create(ctx, spec); err != nil {
		prov.Delete(ctx, id) // whatever a failed create left
		c.Dispatch.RemoveNode(ctx, id)
		return fmt.Errorf("starting node %s of %s with provider %s: %w", id, rec.Name, prov.Name(), err)
	}
	return nil
}

func (c *Controller) createNode(ctx context.Context, prov provider.Provider, rec store.Compute, p compute.ClusterProperties, size api.Size, host *store.Compute) error {
	n := store.Node{Cores: float64(size.Cores), MemoryGB: size.MemoryGB}
	for i := range size.GPUs {
		n.GPUs = append(n.GPUs, store.GPU{Index: i})
	}
	var target *sshx.Target
	if host != nil {
		t, _, err := c.sshTarget(*host)
		if err != nil {
			return err
		}
		target, n.Host = &t, host.Name
	}
	spec := provider.NodeSpec{Cores: float64(size.Cores), MemoryGB: size.MemoryGB,
		GPUs: size.GPUs, LowPriority: p.VMPriority == "lowpriority", SSH: target}
	if p.Provider == "slurm" && host != nil {
		var sp compute.SlurmProperties
		if err := json.Unmarshal(host.Properties, &sp); err != nil {
			return err
		}
		qos := sp.QoS
		if spec.LowPriority && sp.LowPriorityQoS != "" {
			qos = sp.LowPriorityQoS
		}
		spec.Slurm = &provider.SlurmJob{Env: compute.SlurmEnv(sp), Partition: sp.Partition, Account: sp.Account, QoS: qos,
			CPUs: size.Cores, MemoryMB: int(size.MemoryGB * 1024), GPUs: size.GPUs}
	}
	return c.launch(ctx, prov, rec, n, spec)
}

// checkPilots notices pilot jobs Slurm ended on its own (time limit,
// preemption, node failure) and records their nodes as gone, so their runs
// are requeued (preempted) or fail (NodeLost) at once.
func (c *Controller) checkPilots(ctx context.Context, prov provider.Provider, nodes []Node) error {
	jobs, ok := prov.(slurmJobs)
	if !ok {
		return nil
	}
	for _, n := range nodes {
		if n.State == NodeLeaving || n.State == NodeUnusable || n.State == NodePreempted {
			continue
		}
		state, why, err := jobs.JobState(ctx, n.ID)
		if err != nil {
			return err
		}
		switch state {
		case "", "PENDING", "CONFIGURING", "RUNNING", "COMPLETING":
			continue
		}
		c.Log.Warn("Slurm ended a pilot job", "node", n.ID, "state", state, "reason", why)
		if err := c.Dispatch.NodeGone(ctx, n.ID, state == "PREEMPTED"); err != nil {
			return err
		}
	}
	return nil
}

// writeStatus stores the cluster's live status when it changed.
func (c *Controller) writeStatus(ctx context.Context, ws, name string, dec Decision) error {
	nodes, err := c.Dispatch.Nodes(ctx, ws, name)
	if err != nil {
		return err
	}
	st := compute.ClusterStatus{AllocationState: "Steady", TargetNodeCount: dec.Target,
		NodeStateCounts: map[string]int{"idle": 0, "running": 0, "preparing": 0, "unusable": 0, "leaving": 0, "preempted": 0},
		Errors:          []api.ProvisioningError{}}
	for _, n := range nodes {
		switch n.State {
		case NodeStarting:
			st.NodeStateCounts["preparing"]++
		case NodeIdle, NodeRunning, NodeLeaving, NodeUnusable, NodePreempted:
			st.NodeStateCounts[n.State]++
		}
		if n.State != NodeLeaving {
			st.CurrentNodeCount++
		}
	}
	if st.CurrentNodeCount != dec.Target || st.NodeStateCounts["preparing"] > 0 || st.NodeStateCounts["leaving"] > 0 {
		st.AllocationState = "Resizing"
	}
	if strings.HasPrefix(dec.Reason, "quota") {
		st.Errors = append(st.Errors, api.ProvisioningError{Code: "QuotaExceeded", Message: dec.Reason})
	}
	data, _ := json.Marshal(st)
	rec, err := c.Store.GetCompute(ctx, ws, name)
	if errors.Is(err, api.ErrNotFound) {
		return nil // deleted during the pass (a run's own cluster, when its run ends): nothing to show
	}
	if err != nil {
		return err
	}
	if string(rec.Status) == string(data) || rec.State == api.StateDeleting {
		return nil
	}
	rec.Status = data
	err = c.Store.UpdateCompute(ctx, &rec)
	if errors.Is(err, api.ErrConflict) {
		// Changed since it was read (an update, a delete): a new pass
		// starts from what is true now.
		c.Enqueue(key(ws, name))
		return nil
	}
	return err
}

// ReleaseNodes removes every node of a cluster being deleted.
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
			var e *api.Error
			if providerName == "ssh" && errors.As(err, &e) && (e.Code == api.CodeConflict || e.Code == api.CodeUnavailable) {
				// The machine cannot be reached (or is not the one attached):
				// let the target go rather than hang in Deleting forever.
				c.Log.Warn("could not clean up a machine on detach; remove ~/.paddock-agent there by hand", "node", n.ID, "err", err)
			} else {
				errs = append(errs, err)
				continue
			}
		}
		errs = append(errs, c.Dispatch.RemoveNode(ctx, n.ID))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if c.HomesDir != "" { // an instance's home, host key and SSH endpoint go with it
		home := c.homeDir(ws, name)
		return errors.Join(os.RemoveAll(home), os.RemoveAll(home+".ssh_host_key"), os.RemoveAll(home+".ssh_host_key.endpoint"))
	}
	return nil
}

// Preempt injects a preemption of one of a cluster's nodes (tests, demos).
func (c *Controller) Preempt(ctx context.Context, ws, name, nodeID string) error {
	rec, err := c.Store.GetCompute(ctx, ws, name)
	if err != nil {
		return err
	}
	var p compute.ClusterProperties
	json.Unmarshal(rec.Properties, &p)
	if rec.Type != "cluster" {
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
	prov, ok := c.Providers.Get(p.Provider)
	pre, can := prov.(provider.Preempter)
	if !ok || !can {
		return api.Invalid("name", "provider %s cannot inject preemptions", p.Provider)
	}
	return pre.Preempt(ctx, nodeID)
}

// quotaNodes is how many nodes the workspace's core quotas allow this
// cluster in all: those it has plus what the remaining cores buy; -1 when
// no quota limits it.
func (c *Controller) quotaNodes(ctx context.Context, ws, name string, p compute.ClusterProperties, size api.Size, nodes []Node) (int, error) {
	qs, err := c.Store.Quotas(ctx, ws)
	if err != nil || len(qs) == 0 {
		return -1, err
	}
	all, err := c.Dispatch.Nodes(ctx, ws, "")
	if err != nil {
		return -1, err
	}
	usage, err := quota.Measure(ctx, c.Store, c.Sizes, ws, all)
	if err != nil {
		return -1, err
	}
	left, _ := quota.Remaining(qs, usage, size.Family, p.VMPriority == "lowpriority")
	if math.IsInf(left, 1) {
		return -1, nil
	}
	have := 0
	for _, n := range nodes {
		if n.State == NodeStarting || n.State == NodeIdle || n.State == NodeRunning {
			have++
		}
	}
	return have + int(left/float64(max(size.Cores, 1))), nil
}

// freePoolHosts lists the hosts of an SSH pool (remote targets attached
// with that pool) that no node is on, by name.
func (c *Controller) freePoolHosts(ctx context.Context, ws, pool string) ([]store.Compute, error) {
	recs, err := c.Store.ListComputes(ctx, ws)
	if err != nil {
		return nil, err
	}
	nodes, err := c.Dispatch.Nodes(ctx, ws, "")
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, n := range nodes {
		if n.Host != "" {
			used[strings.ToLower(n.Host)] = true
		}
	}
	var free []store.Compute
	for _, r := range recs {
		if r.Type != "remote" || r.State != api.StateSucceeded || used[strings.ToLower(r.Name)] {
			continue
		}
		var p compute.RemoteProperties
		if json.Unmarshal(r.Properties, &p) == nil && p.Pool == pool {
			free = append(free, r)
		}
	}
	return free, nil
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

// sshTarget is how to reach an attached machine (a remote target, a pool
// host, a Slurm login node) with its secrets opened.
func (c *Controller) sshTarget(rec store.Compute) (sshx.Target, compute.RemoteProperties, error) {
	secrets, err := c.Secrets(rec)
	if err != nil {
		return sshx.Target{}, compute.RemoteProperties{}, err
	}
	return compute.SSHTarget(rec.Properties, secrets)
}
