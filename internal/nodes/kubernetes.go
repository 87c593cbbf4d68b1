package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/kube"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/reconcile"
	"github.com/paddock-ml/paddock/internal/store"
)

func init() { Register("kubernetes", reconcileKubernetes) }

// clusterNodes is a provider that watches the nodes of the cluster an
// attached target names (the kubernetes provider); ok is false when it
// may not.
type clusterNodes interface {
	ClusterNodes(ctx context.Context, ws, name string) (nodes []kube.Node, ok bool, err error)
}

// maxPodFailures is how many times a run's pods may fail before their
// agent connects (an image without python3, a server the pods cannot
// reach) before the run fails instead of getting yet another Job.
const maxPodFailures = 3

// podFailures counts, by target key and run id, the Jobs of a run whose
// pods failed before their agent connected. Kept in memory: after a
// restart a run has maxPodFailures more tries.
var podFailures = struct {
	sync.Mutex
	m map[string]map[string]int
}{m: map[string]map[string]int{}}

// reconcileKubernetes turns a kubernetes target's queued runs into Jobs:
// each run gets an Indexed Job with a pod per node, each pod running an
// agent for that run only. While a run is queued, its pod's state is its
// reason (the scheduler's "0/3 nodes are available: ...", an image pull
// error, "waiting for its agent to connect"). A pod that ends before its
// run (evicted, preempted, lost with its node, deleted: the attempt ends
// and the run is requeued like a preempted one; its agent failed: the
// run fails) ends the run's Job, and a requeued run gets a new one. Jobs
// whose run ended are deleted. The provider's watch says when anything
// changed, so nothing here polls. The target's status shows the cluster's
// nodes.
func reconcileKubernetes(ctx context.Context, c *Controller, rec store.Compute) (reconcile.Result, error) {
	prov, ok := c.provider(rec)
	if !ok {
		return reconcile.Result{}, nil
	}
	err := c.runJobs(ctx, prov, rec)
	serr := c.kubernetesStatus(ctx, prov, rec, err)
	return reconcile.Result{}, errors.Join(err, serr)
}

func (c *Controller) runJobs(ctx context.Context, prov provider.Provider, rec store.Compute) error {
	group, canGroup := prov.(provider.Grouped)
	jobs, canJobs := prov.(provider.JobStates)
	cfg, canCfg := prov.(provider.NodeConfigurer)
	if !canGroup || !canJobs || !canCfg {
		return nil
	}
	ws := rec.Workspace
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
	key := store.Key(ws, rec.Name)
	forgetPodFailures(key, alive)
	byRun := map[string][]store.Node{}
	for _, n := range nodes {
		if !alive[n.Pin] { // its run ended (or was cancelled before it started)
			if err := c.deleteNode(ctx, prov, n.ID, store.NodeUnusable); err != nil {
				return err
			}
			continue
		}
		byRun[n.Pin] = append(byRun[n.Pin], n)
	}
	reasons := map[string]string{}
	runIDs := make([]string, 0, len(byRun))
	for id := range byRun {
		runIDs = append(runIDs, id)
	}
	sort.Strings(runIDs)
	for _, runID := range runIDs {
		reason, ended, err := c.checkRunPods(ctx, prov, jobs, key, runID, byRun[runID])
		if err != nil {
			return err
		}
		reasons[runID] = reason
		if ended {
			delete(byRun, runID) // a run requeued gets a new Job below
		}
	}
	// The queued runs' Jobs, several at once: each is a store commit and
	// two API calls, and a burst of submissions should not wait for them
	// one by one.
	var (
		mu      sync.Mutex
		errs    []error
		stopped bool
		wg      sync.WaitGroup
		slots   = make(chan struct{}, launchParallel)
	)
	for _, r := range queued {
		if _, ok := byRun[r.ID]; ok {
			continue
		}
		if n := podFailureCount(key, r.ID); n >= maxPodFailures {
			mu.Lock()
			last := strings.TrimPrefix(reasons[r.ID], "Kubernetes: ")
			mu.Unlock()
			err := c.Dispatch.FailQueued(ctx, ws, r.ID, "PodFailed",
				fmt.Sprintf("the run's pods failed %d times before their agent connected; the last time: %s", n, last))
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			continue
		}
		slots <- struct{}{}
		mu.Lock()
		stop := stopped
		mu.Unlock()
		if stop {
			<-slots
			break
		}
		wg.Add(1)
		go func(r store.Run) {
			defer func() { <-slots; wg.Done() }()
			err := c.launchJob(ctx, group, cfg, rec, r)
			if errors.Is(err, api.ErrInvalid) {
				// It can never start here (no instance type fits it).
				err = c.Dispatch.FailQueued(ctx, ws, r.ID, "Unschedulable", err.Error())
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				// The cluster refuses or is unreachable: no more this pass;
				// the error requeues the target with backoff.
				errs, stopped = append(errs, err), true
				return
			}
			reasons[r.ID] = "Kubernetes: Job created"
		}(r)
	}
	wg.Wait()
	waiting := make(map[string]string, len(queued))
	for _, r := range queued {
		waiting[r.ID] = reasons[r.ID]
	}
	errs = append(errs, c.Dispatch.SetRunReasons(ctx, ws, waiting))
	return errors.Join(errs...)
}

// launchParallel is how many Jobs one pass makes at once.
const launchParallel = 16

// checkRunPods reads the state of one run's pods: why the run waits,
// and whether its Job has ended before the run did (then every node of
// the Job is recorded as gone — preempted unless a pod failed — and
// deleted, and the run, requeued, gets a new Job).
func (c *Controller) checkRunPods(ctx context.Context, prov provider.Provider, jobs provider.JobStates, key, runID string, nodes []store.Node) (reason string, ended bool, err error) {
	failed, disrupted, connected := "", "", false
	for _, n := range nodes {
		if n.State != store.NodeStarting {
			connected = true
		}
		if n.State == store.NodeUnusable || n.State == store.NodePreempted {
			if disrupted == "" {
				disrupted = n.Reason
			}
			if n.State == store.NodeUnusable && failed == "" {
				failed = n.Reason
			}
			continue
		}
		state, why, err := jobs.JobState(ctx, n.ID)
		if err != nil {
			return "", false, err
		}
		switch state {
		case "PENDING", "":
			if reason == "" && why != "" {
				reason = "Kubernetes: " + why
			}
		case "RUNNING":
			if reason == "" && n.State == store.NodeStarting {
				reason = "Kubernetes: pod running; waiting for its agent to connect"
			}
		case "PREEMPTED":
			if disrupted == "" {
				disrupted = why
			}
		case "COMPLETED":
			if failed == "" {
				failed = "its agent exited before the run ended"
			}
		default: // FAILED, TIMEOUT
			if failed == "" {
				failed = why
			}
		}
	}
	if failed == "" && disrupted == "" {
		return reason, false, nil
	}
	// The Job is over: the run's attempt ends with it (requeued when a pod
	// was taken away, failed when one failed), and the Job goes.
	preempted, why := failed == "", failed
	if preempted {
		why = disrupted
	}
	c.Log.Warn("a run's pod ended before the run", "run", runID, "preempted", preempted, "why", why)
	for _, n := range nodes {
		if n.State != store.NodeUnusable && n.State != store.NodePreempted {
			if err := c.Dispatch.NodeEnded(ctx, n.ID, preempted, why); err != nil {
				return "", false, err
			}
		}
	}
	if !preempted && !connected {
		addPodFailure(key, runID)
	}
	for _, n := range nodes {
		if err := c.deleteNode(ctx, prov, n.ID, store.NodeUnusable); err != nil {
			return "", false, err
		}
	}
	return "Kubernetes: " + why, true, nil
}

// launchJob records the nodes of one queued run, pinned to it, and asks
// the provider for their Job: pod i is node i, named after the first.
func (c *Controller) launchJob(ctx context.Context, group provider.Grouped, cfg provider.NodeConfigurer, rec store.Compute, r store.Run) error {
	cores := r.Resources.Cores
	if cores <= 0 {
		cores = 1
	}
	req := provider.NodeRequest{Workspace: rec.Workspace, Host: rec.Name, Cores: cores, MemoryGB: r.Resources.MemoryGB,
		GPUs: r.Resources.GPUs, OneRun: true, RunID: r.ID, Image: r.Environment.Image}
	if r.MaxRunDurationSeconds > 0 {
		req.TimeMinutes = int(math.Ceil(float64(r.MaxRunDurationSeconds)/60)) + 1
	}
	config, err := cfg.NodeConfig(ctx, req)
	if err != nil {
		return err
	}
	count := max(r.NodeCount, 1)
	base := newNodeID(rec)
	specs := make([]provider.NodeSpec, count)
	for i := range count {
		id := base
		if i > 0 {
			id = fmt.Sprintf("%s-%d", base, i)
		}
		token := c.NewToken()
		n := store.Node{ID: id, Workspace: rec.Workspace, Compute: rec.Name, TokenHash: c.TokenHash(token), CreatedAt: c.now(),
			Cores: cores, MemoryGB: r.Resources.MemoryGB, Pin: r.ID, MaxRuns: 1}
		for g := range r.Resources.GPUs {
			n.GPUs = append(n.GPUs, store.GPU{Index: g})
		}
		if err := c.Dispatch.AddNode(ctx, n); err != nil {
			return err
		}
		specs[i] = provider.NodeSpec{ID: id, Workspace: rec.Workspace, Compute: rec.Name, Cores: cores, MemoryGB: r.Resources.MemoryGB,
			GPUs: r.Resources.GPUs, Host: rec.Name, Config: config, Token: token, ServerURL: c.ServerURL}
	}
	if err := group.CreateGroup(ctx, specs); err != nil {
		if p, ok := group.(provider.Provider); ok {
			p.Delete(ctx, base) // whatever a failed create left
		}
		for _, s := range specs {
			c.Dispatch.RemoveNode(ctx, s.ID)
		}
		return fmt.Errorf("making the Job of run %s on %s: %w", r.ID, rec.Name, err)
	}
	return nil
}

// kubernetesStatus keeps the target's status current: reachable (the last
// pass could talk to the cluster), and its nodes as the provider's watch
// sees them.
func (c *Controller) kubernetesStatus(ctx context.Context, prov provider.Provider, rec store.Compute, passErr error) error {
	st, err := compute.Status[compute.KubernetesStatus](rec)
	if err != nil {
		return err
	}
	st.Reachable, st.Error = passErr == nil, ""
	if passErr != nil {
		st.Error = api.AsError(passErr).Message
		if api.AsError(passErr).Code == api.CodeInternal {
			st.Error = passErr.Error()
		}
	}
	if cn, ok := prov.(clusterNodes); ok && passErr == nil {
		nodes, watching, err := cn.ClusterNodes(ctx, rec.Workspace, rec.Name)
		switch {
		case err != nil:
			st.Reachable, st.Error = false, err.Error()
		case watching:
			st = st.WithNodes(nodes)
		}
	}
	data, _ := json.Marshal(st)
	_, err = c.updateStatus(ctx, rec.Workspace, rec.Name, data, nil)
	return err
}

func podFailureCount(key, runID string) int {
	podFailures.Lock()
	defer podFailures.Unlock()
	return podFailures.m[key][runID]
}

func addPodFailure(key, runID string) {
	podFailures.Lock()
	defer podFailures.Unlock()
	if podFailures.m[key] == nil {
		podFailures.m[key] = map[string]int{}
	}
	podFailures.m[key][runID]++
}

// forgetPodFailures drops the counts of a target's runs that are over.
func forgetPodFailures(key string, alive map[string]bool) {
	podFailures.Lock()
	defer podFailures.Unlock()
	for id := range podFailures.m[key] {
		if !alive[id] {
			delete(podFailures.m[key], id)
		}
	}
	if len(podFailures.m[key]) == 0 {
		delete(podFailures.m, key)
	}
}
