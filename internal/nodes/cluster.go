package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/quota"
	"github.com/paddock-ml/paddock/internal/reconcile"
	"github.com/paddock-ml/paddock/internal/store"
)

func init() { Register("cluster", reconcileCluster) }

// maxCreatesPerPass bounds the nodes one reconcile pass of a cluster
// starts.
const maxCreatesPerPass = 256

// reconcileCluster sizes a cluster to its queue: Decide says how many
// nodes it should have and which idle ones go, the provider makes and
// removes them. What the provider is matters only through what it can do:
// a Pooled provider gives at most one node per free host of the cluster's
// pool; JobStates nodes are batch jobs whose end the batch scheduler
// decides too (polled every second while there are any, unless the
// provider is a Watcher that says when they change); a NodeConfigurer
// gives each node its own settings.
func reconcileCluster(ctx context.Context, c *Controller, rec store.Compute) (reconcile.Result, error) {
	ws := rec.Workspace
	p, err := compute.Props[compute.ClusterProperties](rec)
	if err != nil {
		return reconcile.Result{}, reconcile.Terminal(err)
	}
	prov, ok := c.provider(rec)
	if !ok {
		return reconcile.Result{}, nil
	}
	size, ok := c.Sizes.Find(p.VMSize)
	if !ok {
		return reconcile.Result{}, reconcile.Terminal(fmt.Errorf("cluster %s: size %s is no longer in the catalog", rec.Name, p.VMSize))
	}
	nodes, queue, err := c.Dispatch.ClusterView(ctx, ws, rec.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	quotaNodes, err := c.quotaNodes(ctx, ws, p, size, nodes)
	if err != nil {
		return reconcile.Result{}, err
	}
	cl := Cluster{Key: store.Key(ws, rec.Name), MinNodes: *p.MinNodes, MaxNodes: *p.MaxNodes,
		IdleAfter: time.Duration(*p.IdleSecondsBeforeScaledown) * time.Second,
		NodeCores: float64(size.Cores), NodeMemGB: size.MemoryGB, NodeGPUs: size.GPUs, QuotaNodes: quotaNodes}
	hosts, res, err := c.providerLimits(ctx, prov, ws, p.From, nodes, &cl)
	if err != nil {
		return reconcile.Result{}, err
	}
	now := c.now()
	dec := Decide(cl, nodes, queue, now)
	errs := []error{c.Dispatch.SetQueueReason(ctx, ws, rec.Name, queueReason(dec, nodes, queue))}
	states := map[string]string{}
	for _, n := range nodes {
		states[n.ID] = n.State
	}
	for _, id := range dec.Delete {
		errs = append(errs, c.deleteNode(ctx, prov, id, states[id]))
	}
	for i := range dec.Create {
		if i == maxCreatesPerPass {
			// The rest in the next pass, right away: meanwhile the status
			// says where the cluster is going and other targets get
			// their turn (10,000 nodes took minutes in one pass).
			res.Requeue = true
			break
		}
		host := p.From // the attached target nodes are made through, if any
		if hosts != nil {
			if i >= len(hosts) {
				break
			}
			host = hosts[i]
		}
		if err := c.createClusterNode(ctx, prov, rec, p, size, host); err != nil {
			errs = append(errs, err)
			break
		}
	}
	if r, err := c.writeClusterStatus(ctx, ws, rec.Name, dec); err != nil {
		errs = append(errs, err)
	} else if r.Requeue {
		res = r
	}
	if !dec.NextCheck.IsZero() && !res.Requeue {
		next := max(dec.NextCheck.Sub(now), 10*time.Millisecond)
		if res.RequeueAfter == 0 || next < res.RequeueAfter {
			res.RequeueAfter = next
		}
	}
	return res, errors.Join(errs...)
}

// providerLimits applies what the provider can do to the cluster: a
// Pooled provider gives at most one node per free host of the pool (the
// hosts it returns, in order; nil for other providers); JobStates nodes
// whose jobs the scheduler ended are recorded as gone, and the scheduler
// is polled every second while there are any.
func (c *Controller) providerLimits(ctx context.Context, prov provider.Provider, ws, from string, nodes []Node, cl *Cluster) ([]string, reconcile.Result, error) {
	var res reconcile.Result
	var hosts []string
	if _, pooled := prov.(provider.Pooled); pooled {
		free, err := c.freePoolHosts(ctx, ws, from)
		if err != nil {
			return nil, res, err
		}
		own := 0
		for _, n := range nodes {
			if n.State != store.NodeLeaving {
				own++
			}
		}
		hosts = free
		cl.MaxNodes = min(cl.MaxNodes, own+len(free))
		cl.MinNodes = min(cl.MinNodes, cl.MaxNodes)
	}
	if jobs, ok := prov.(provider.JobStates); ok {
		var live []string
		for _, n := range nodes {
			if n.State != store.NodeLeaving && n.State != store.NodeUnusable && n.State != store.NodePreempted {
				live = append(live, n.ID)
			}
		}
		if err := c.checkJobs(ctx, jobs, live); err != nil {
			return nil, res, err
		}
		// A provider that watches its jobs says when they change.
		if _, watched := prov.(provider.Watcher); len(nodes) > 0 && !watched {
			res = reconcile.After(time.Second)
		}
	}
	return hosts, res, nil
}

// queueReason is why a cluster's queued runs wait. The queue learns it
// before the nodes are made: starting one over SSH can take a while (the
// agent binary is copied).
func queueReason(dec Decision, nodes []Node, queue []Run) string {
	if dec.Reason != "" || len(queue) == 0 {
		return dec.Reason
	}
	for _, n := range nodes {
		if n.State == store.NodeStarting {
			return "waiting for starting nodes to be ready"
		}
	}
	return ""
}

// createClusterNode starts one node of the cluster's size, on or through
// host when the provider needs one.
func (c *Controller) createClusterNode(ctx context.Context, prov provider.Provider, rec store.Compute, p compute.ClusterProperties, size api.Size, host string) error {
	n := store.Node{Cores: float64(size.Cores), MemoryGB: size.MemoryGB, Host: host}
	for i := range size.GPUs {
		n.GPUs = append(n.GPUs, store.GPU{Index: i})
	}
	spec := provider.NodeSpec{Cores: float64(size.Cores), MemoryGB: size.MemoryGB,
		GPUs: size.GPUs, LowPriority: p.VMPriority == "lowpriority", Host: host}
	if cfg, ok := prov.(provider.NodeConfigurer); ok {
		var err error
		if spec.Config, err = cfg.NodeConfig(ctx, provider.NodeRequest{Workspace: rec.Workspace, Host: host,
			Cores: spec.Cores, MemoryGB: spec.MemoryGB, GPUs: spec.GPUs, LowPriority: spec.LowPriority}); err != nil {
			return err
		}
	}
	return c.launch(ctx, prov, rec, n, spec)
}

// quotaNodes is how many nodes the workspace's core quotas allow this
// cluster in all: those it has plus what the remaining cores buy; -1 when
// no quota limits it.
func (c *Controller) quotaNodes(ctx context.Context, ws string, p compute.ClusterProperties, size api.Size, nodes []Node) (int, error) {
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
		if n.State == store.NodeStarting || n.State == store.NodeIdle || n.State == store.NodeRunning {
			have++
		}
	}
	return have + int(left/float64(max(size.Cores, 1))), nil
}

// freePoolHosts lists the hosts of a pool (attached machines whose pool
// property names it) that no node is on, by name.
func (c *Controller) freePoolHosts(ctx context.Context, ws, pool string) ([]string, error) {
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
	free := []string{}
	for _, r := range recs {
		if r.State != api.StateSucceeded || used[strings.ToLower(r.Name)] {
			continue
		}
		var hp struct {
			Pool string `json:"pool"`
		}
		if json.Unmarshal(r.Properties, &hp) == nil && hp.Pool != "" && hp.Pool == pool {
			free = append(free, r.Name)
		}
	}
	return free, nil
}

// writeClusterStatus stores the cluster's live status when it changed.
func (c *Controller) writeClusterStatus(ctx context.Context, ws, name string, dec Decision) (reconcile.Result, error) {
	nodes, err := c.Dispatch.Nodes(ctx, ws, name)
	if err != nil {
		return reconcile.Result{}, err
	}
	st := compute.ClusterStatus{AllocationState: "Steady", TargetNodeCount: dec.Target,
		NodeStateCounts: map[string]int{"idle": 0, "running": 0, "preparing": 0, "unusable": 0, "leaving": 0, "preempted": 0},
		Errors:          []api.ProvisioningError{}}
	for _, n := range nodes {
		switch n.State {
		case store.NodeStarting:
			st.NodeStateCounts["preparing"]++
		case store.NodeIdle, store.NodeRunning, store.NodeLeaving, store.NodeUnusable, store.NodePreempted:
			st.NodeStateCounts[n.State]++
		}
		if n.State != store.NodeLeaving {
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
	return c.updateStatus(ctx, ws, name, data, nil)
}
