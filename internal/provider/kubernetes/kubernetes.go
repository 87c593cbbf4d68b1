// Package kubernetes is the kubernetes node provider: a node is a pod of
// an attached Kubernetes cluster that runs `paddock agent`. A run on a
// kubernetes target gets a batch/v1 Indexed Job with one pod per node, each
// running an agent for that run only (as the Slurm pilot does), a Secret
// with the nodes' tokens and, for a multi-node run, a headless Service that
// names the pods; a cluster with provider kubernetes gets one pod per node,
// whose agent stays for many runs. An init container fetches the agent
// binary from the server with the node's token, so any image with python3
// will do.
//
// The provider watches (client-go informers, no polling) the Jobs and Pods
// it made, by label, in each target's namespace, and the cluster's nodes
// when it may. A change to a node's pod or Job is a provider.Changed event
// for the node's target, whose reconciler asks JobState: pending (with the
// scheduler's or the kubelet's reason), running, completed, failed, or
// preempted (evicted, preempted, lost with its node, deleted by someone
// else), which requeues the run like a preemption.
package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/kube"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/store"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// Name is the provider's name.
const Name = "kubernetes"

// Provider makes nodes as pods of attached Kubernetes clusters.
type Provider struct {
	env provider.Env
	log *slog.Logger
	ctx context.Context // the server's life

	openMu sync.Mutex // one target opened at a time
	mu     sync.Mutex
	conns  map[string]*conn    // by the kubernetes target's store key
	nodes  map[string]nodeRef  // node id → its group
	seen   map[string]bool     // node ids whose pod the watch has seen
	gone   map[string]struct{} // groups the server is deleting

	dirtyMu sync.Mutex
	dirty   map[string]bool // target keys with changes not yet sent
	kick    chan struct{}
	events  chan provider.Event
}

// nodeRef is where a node is: the target it was made through and its
// group (its pod, or the Job of its run) and index there.
type nodeRef struct {
	conn  string
	group string
	index int
	job   bool
}

// conn is one attached target's cluster: a client and the watches of
// what Paddock made in its namespace.
type conn struct {
	key, ws, name string
	ns            string
	label         string // LabelTarget's value
	props         compute.KubernetesProperties
	cs            k8s.Interface
	pods, jobs    cache.SharedIndexInformer
	nodes         cache.SharedIndexInformer // nil when the credentials may not watch nodes
	stop          chan struct{}

	errMu   sync.Mutex
	lastErr string // the watch's last error
}

var (
	_ provider.Provider       = (*Provider)(nil)
	_ provider.NodeConfigurer = (*Provider)(nil)
	_ provider.JobStates      = (*Provider)(nil)
	_ provider.Watcher        = (*Provider)(nil)
	_ provider.Grouped        = (*Provider)(nil)
	_ provider.Preempter      = (*Provider)(nil)
	_ provider.TargetCloser   = (*Provider)(nil)
	_ provider.Adopter        = (*Provider)(nil)
)

var klogOnce sync.Once

func init() {
	provider.Register(Name, func(ctx context.Context, env provider.Env) (provider.Provider, error) {
		return New(ctx, env), nil
	})
}

// New returns the provider; ctx ends its watches.
func New(ctx context.Context, env provider.Env) *Provider {
	log := env.Log
	if log == nil {
		log = slog.Default()
	}
	klogOnce.Do(func() {
		// client-go logs through klog: into the server's log, quietly.
		klog.SetLogger(logr.FromSlogHandler(log.With("component", "client-go").Handler()))
	})
	p := &Provider{env: env, log: log, ctx: ctx, conns: map[string]*conn{}, nodes: map[string]nodeRef{},
		seen: map[string]bool{}, gone: map[string]struct{}{}, dirty: map[string]bool{},
		kick: make(chan struct{}, 1), events: make(chan provider.Event, 256)}
	go p.sendChanges()
	return p
}

// Name implements provider.Provider.
func (p *Provider) Name() string { return Name }

// Events implements provider.Watcher: Changed for the target of a node
// whose pod or Job changed.
func (p *Provider) Events() <-chan provider.Event { return p.events }

// markDirty notes that a target's nodes changed; sendChanges tells the
// controller, once per target however many changes came in between.
func (p *Provider) markDirty(key string) {
	if key == "" {
		return
	}
	p.dirtyMu.Lock()
	p.dirty[key] = true
	p.dirtyMu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Provider) sendChanges() {
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.kick:
		}
		p.dirtyMu.Lock()
		keys := make([]string, 0, len(p.dirty))
		for k := range p.dirty {
			keys = append(keys, k)
		}
		clear(p.dirty)
		p.dirtyMu.Unlock()
		sort.Strings(keys)
		for _, k := range keys {
			select {
			case p.events <- provider.Event{Kind: provider.Changed, Target: k}:
			case <-p.ctx.Done():
				return
			}
		}
	}
}

// targetLabel is LabelTarget's value for a target: its workspace and
// name, or a digest of them when they do not make a label value.
func targetLabel(ws, name string) string {
	v := strings.ToLower(ws + "." + name)
	ok := len(v) <= 63
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			ok = false
		}
	}
	if ok {
		return v
	}
	h := uint64(14695981039346656037)
	for _, b := range []byte(v) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return "t-" + strconv.FormatUint(h, 36)
}

// open returns the cluster of an attached kubernetes target, starting
// its watches the first time.
func (p *Provider) open(ctx context.Context, ws, name string) (*conn, error) {
	key := store.Key(ws, name)
	p.mu.Lock()
	c := p.conns[key]
	p.mu.Unlock()
	if c != nil {
		return c, nil
	}
	p.openMu.Lock()
	defer p.openMu.Unlock()
	p.mu.Lock()
	c = p.conns[key]
	p.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if p.env.Target == nil {
		return nil, fmt.Errorf("kubernetes provider: no way to open target %s", name)
	}
	rec, secrets, err := p.env.Target(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	if rec.Type != "kubernetes" {
		return nil, api.Invalid("from", "%s is a %s target, not a kubernetes one", name, rec.Type)
	}
	kc, props, err := compute.KubernetesConnection(rec.Properties, secrets)
	if err != nil {
		return nil, err
	}
	cs, err := kc.Clientset()
	if err != nil {
		return nil, err
	}
	st, _ := compute.Status[compute.KubernetesStatus](rec)
	c = &conn{key: key, ws: ws, name: name, ns: kc.Namespace, label: targetLabel(ws, name), props: props, cs: cs, stop: make(chan struct{})}
	sel := LabelManagedBy + "=" + ManagedBy + "," + LabelTarget + "=" + c.label
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(c.ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	c.pods = f.Core().V1().Pods().Informer()
	c.jobs = f.Batch().V1().Jobs().Informer()
	handler := cache.ResourceEventHandlerFuncs{AddFunc: p.objectChanged, UpdateFunc: func(_, o any) { p.objectChanged(o) }, DeleteFunc: p.objectChanged}
	for _, inf := range []cache.SharedIndexInformer{c.pods, c.jobs} {
		if err := inf.AddIndexers(cache.Indexers{"node": nodesIndex}); err != nil {
			return nil, err
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, err
		}
		inf.SetWatchErrorHandler(c.watchError)
	}
	synced := []cache.InformerSynced{c.pods.HasSynced, c.jobs.HasSynced}
	if st.CanWatchNodes {
		nf := informers.NewSharedInformerFactory(cs, 0)
		c.nodes = nf.Core().V1().Nodes().Informer()
		c.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { p.markDirty(key) },
			UpdateFunc: func(a, b any) { nodeChanged(a, b, func() { p.markDirty(key) }) },
			DeleteFunc: func(any) { p.markDirty(key) },
		})
		c.nodes.SetWatchErrorHandler(c.watchError)
		nf.Start(c.stop)
		synced = append(synced, c.nodes.HasSynced)
	}
	f.Start(c.stop)
	go func() {
		select {
		case <-p.ctx.Done():
			c.close()
		case <-c.stop:
		}
	}()
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), synced...) {
		c.close()
		return nil, api.Unavailable("cannot watch the Jobs and Pods of namespace %s at %s: %s", c.ns, kc.Server, c.watchErr())
	}
	p.mu.Lock()
	p.conns[key] = c
	p.mu.Unlock()
	p.log.Info("watching a Kubernetes namespace", "target", name, "namespace", c.ns, "server", kc.Server, "nodes", c.nodes != nil)
	return c, nil
}

func (c *conn) watchError(_ *cache.Reflector, err error) {
	c.errMu.Lock()
	c.lastErr = err.Error()
	c.errMu.Unlock()
}

func (c *conn) watchErr() string {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.lastErr == "" {
		return "timed out"
	}
	return c.lastErr
}

var closeMu sync.Mutex

func (c *conn) close() {
	closeMu.Lock()
	defer closeMu.Unlock()
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
}

// nodeChanged calls f when a node's readiness or allocatable resources
// changed (not on every status heartbeat).
func nodeChanged(a, b any, f func()) {
	x, ok1 := a.(*corev1.Node)
	y, ok2 := b.(*corev1.Node)
	if !ok1 || !ok2 || kube.NodeOf(x) != kube.NodeOf(y) {
		f()
	}
}

// nodesIndex indexes pods and Jobs by the node ids they are: a cluster
// node's pod is its node; an Indexed Job's pod is the node of its index;
// a Job is all its nodes.
func nodesIndex(obj any) ([]string, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil
	}
	ids := nodeIDs(m)
	if _, isPod := obj.(*corev1.Pod); isPod {
		if i, ok := m.GetAnnotations()[AnnotCompletionIndex]; ok {
			n, err := strconv.Atoi(i)
			if err != nil || n < 0 || n >= len(ids) {
				return nil, nil
			}
			return ids[n : n+1], nil
		}
	}
	return ids, nil
}

func nodeIDs(m metav1.Object) []string {
	s := m.GetAnnotations()[AnnotNodes]
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// objectChanged is the watches' handler: a pod's node has been seen, and
// the object's target is to be reconciled.
func (p *Provider) objectChanged(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	if _, isPod := obj.(*corev1.Pod); isPod {
		// A node whose pod has been seen and is gone was deleted; one whose
		// pod has not been seen yet is still being made.
		ids, _ := nodesIndex(obj)
		p.mu.Lock()
		for _, id := range ids {
			p.seen[id] = true
		}
		p.mu.Unlock()
	}
	p.markDirty(m.GetAnnotations()[AnnotTargetKey])
}

// NodeConfig implements provider.NodeConfigurer: the pod of a node, from
// the target's settings (image, instance types, server URL, low-priority
// PriorityClass and tolerations) and what the node is for.
func (p *Provider) NodeConfig(ctx context.Context, req provider.NodeRequest) (json.RawMessage, error) {
	rec, _, err := p.env.Target(ctx, req.Workspace, req.Host)
	if err != nil {
		return nil, err
	}
	props, err := compute.Props[compute.KubernetesProperties](rec)
	if err != nil {
		return nil, err
	}
	cfg := PodConfig{Image: req.Image, Cores: req.Cores, MemoryGB: req.MemoryGB, GPUs: req.GPUs,
		ServerURL: props.ServerURL, OneRun: req.OneRun, RunID: req.RunID}
	if cfg.Image == "" {
		cfg.Image = props.Image
	}
	if cfg.Image == "" {
		cfg.Image = compute.DefaultKubernetesImage
	}
	if len(props.InstanceTypes) > 0 {
		name, t, err := compute.PickInstanceType(props.InstanceTypes, req.Cores, req.MemoryGB, req.GPUs)
		if err != nil {
			return nil, err
		}
		cfg.InstanceType, cfg.NodeSelector = name, t.NodeSelector
		cfg.Cores, cfg.MemoryGB, cfg.GPUs = t.Cores(), t.MemoryGB(), t.GPU
	}
	if req.TimeMinutes > 0 {
		// The agent ends the run at its max_run_duration; Kubernetes ends
		// the pod a little later, should the agent not (the slack covers
		// fetching the agent and the source).
		cfg.ActiveDeadlineSeconds = int64(req.TimeMinutes)*60 + 300
	}
	if req.LowPriority {
		cfg.PriorityClass = props.LowPriorityPriorityClass
		for _, s := range props.LowPriorityTolerations {
			t, err := compute.ParseToleration(s)
			if err != nil {
				return nil, err
			}
			cfg.Tolerations = append(cfg.Tolerations, t)
		}
	}
	return json.Marshal(cfg)
}

// Create implements provider.Provider: a cluster node's pod, with the
// Secret it reads its token from. A retried Create finds the pod made
// the first time.
func (p *Provider) Create(ctx context.Context, spec provider.NodeSpec) error {
	return p.create(ctx, []provider.NodeSpec{spec}, false)
}

// CreateGroup implements provider.Grouped: the Indexed Job of one run's
// nodes (spec i is index i), its Secret and, for several nodes, its
// headless Service. The group is named after the first node.
func (p *Provider) CreateGroup(ctx context.Context, specs []provider.NodeSpec) error {
	if len(specs) == 0 {
		return nil
	}
	return p.create(ctx, specs, true)
}

func (p *Provider) create(ctx context.Context, specs []provider.NodeSpec, job bool) error {
	first := specs[0]
	var cfg PodConfig
	if err := json.Unmarshal(first.Config, &cfg); err != nil {
		return fmt.Errorf("kubernetes provider: node %s: %w", first.ID, err)
	}
	if first.Host == "" {
		return fmt.Errorf("kubernetes provider: node %s names no kubernetes target", first.ID)
	}
	c, err := p.open(ctx, first.Workspace, first.Host)
	if err != nil {
		return err
	}
	group := first.ID
	ids := make([]string, len(specs))
	tokens := make([]string, len(specs))
	for i, s := range specs {
		ids[i], tokens[i] = s.ID, s.Token
	}
	p.mu.Lock()
	for i, id := range ids {
		p.nodes[id] = nodeRef{conn: c.key, group: group, index: i, job: job}
	}
	delete(p.gone, c.key+"/"+group)
	p.mu.Unlock()
	serverURL := cfg.ServerURL
	if serverURL == "" {
		serverURL = first.ServerURL
	}
	targetKey := store.Key(first.Workspace, first.Compute)
	// The Job (or pod) first, then its Secret owned by it, so that the
	// Secret goes with it should the server not delete it: two calls per
	// run. The kubelet waits for a pod's Secret volume to exist.
	var owner metav1.OwnerReference
	if job {
		j, err := c.cs.BatchV1().Jobs(c.ns).Create(ctx, RunJob(group, c.ns, c.label, targetKey, ids, cfg), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			j, err = c.cs.BatchV1().Jobs(c.ns).Get(ctx, group, metav1.GetOptions{})
		}
		if err != nil {
			return kube.Explain(conn2(c), err)
		}
		owner = metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID}
		if len(specs) > 1 {
			svc := GroupService(group, c.ns, c.label)
			svc.OwnerReferences = []metav1.OwnerReference{owner}
			if _, err := c.cs.CoreV1().Services(c.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return kube.Explain(conn2(c), err)
			}
		}
	} else {
		pod, err := c.cs.CoreV1().Pods(c.ns).Create(ctx, NodePod(group, c.ns, c.label, targetKey, cfg), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			pod, err = c.cs.CoreV1().Pods(c.ns).Get(ctx, group, metav1.GetOptions{})
		}
		if err != nil {
			return kube.Explain(conn2(c), err)
		}
		owner = metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}
	}
	secrets := c.cs.CoreV1().Secrets(c.ns)
	sec := GroupSecret(group, c.ns, c.label, serverURL, p.env.CA, tokens)
	sec.OwnerReferences = []metav1.OwnerReference{owner}
	if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{}) // a retry: its tokens are new
		if err != nil {
			return kube.Explain(conn2(c), err)
		}
	} else if err != nil {
		return kube.Explain(conn2(c), err)
	}
	what := "pod"
	if job {
		what = "job"
	}
	p.log.Info("kubernetes node started", "nodes", strings.Join(ids, ","), what, group, "namespace", c.ns, "image", cfg.Image)
	return nil
}

// conn2 is the kube.Connection of a conn, for error messages.
func conn2(c *conn) *kube.Connection {
	return &kube.Connection{Namespace: c.ns, Server: c.props.Server}
}

// lookup finds a node's target and group: from memory, else from what
// the watch of its target holds.
func (p *Provider) lookup(ctx context.Context, id string) (nodeRef, *conn, error) {
	p.mu.Lock()
	ref, ok := p.nodes[id]
	c := p.conns[ref.conn]
	p.mu.Unlock()
	if ok && c != nil {
		return ref, c, nil
	}
	if p.env.NodeHost == nil {
		return ref, nil, fmt.Errorf("kubernetes provider: node %s is not known", id)
	}
	ws, name, err := p.env.NodeHost(ctx, id)
	if err != nil {
		return ref, nil, err
	}
	if c, err = p.open(ctx, ws, name); err != nil {
		return ref, nil, err
	}
	ref = nodeRef{conn: c.key, group: id}
	for _, inf := range []cache.SharedIndexInformer{c.jobs, c.pods} {
		objs, _ := inf.GetIndexer().ByIndex("node", id)
		for _, o := range objs {
			m, err := meta.Accessor(o)
			if err != nil {
				continue
			}
			_, ref.job = o.(*batchv1.Job)
			ref.group = m.GetLabels()[LabelGroup]
			for i, x := range nodeIDs(m) {
				if x == id {
					ref.index = i
				}
			}
			p.mu.Lock()
			p.nodes[id] = ref
			p.mu.Unlock()
			return ref, c, nil
		}
	}
	return ref, c, nil
}

// JobState implements provider.JobStates from what the watch holds (no
// call to the API): the state of the node's pod, else of its Job.
func (p *Provider) JobState(ctx context.Context, id string) (string, string, error) {
	ref, c, err := p.lookup(ctx, id)
	if err != nil {
		return "", "", err
	}
	objs, _ := c.pods.GetIndexer().ByIndex("node", id)
	var newest *corev1.Pod
	for _, o := range objs {
		if pod, ok := o.(*corev1.Pod); ok && (newest == nil || newest.CreationTimestamp.Before(&pod.CreationTimestamp)) {
			newest = pod
		}
	}
	if newest != nil {
		state, why := PodState(newest)
		return state, why, nil
	}
	p.mu.Lock()
	seen := p.seen[id]
	p.mu.Unlock()
	if seen {
		return StatePreempted, "its pod was deleted", nil
	}
	if ref.job {
		if o, ok, _ := c.jobs.GetIndexer().GetByKey(c.ns + "/" + ref.group); ok {
			if state, why := JobFailure(o.(*batchv1.Job)); state != "" {
				return state, why, nil
			}
			return StatePending, "the Job is making its pod", nil
		}
	}
	return StatePending, "creating its pod", nil
}

// Delete implements provider.Provider: the node's group goes — a cluster
// node's pod, or a run's Job with its pods — with its Service and Secret.
// A group already gone is not an error.
func (p *Provider) Delete(ctx context.Context, id string) error {
	ref, c, err := p.lookup(ctx, id)
	if errors.Is(err, api.ErrNotFound) {
		return nil // its target is gone, and what it made with it
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.gone[c.key+"/"+ref.group] = struct{}{}
	p.mu.Unlock()
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	var errs []error
	if ref.job {
		errs = append(errs, c.cs.BatchV1().Jobs(c.ns).Delete(ctx, ref.group, opts))
		errs = append(errs, c.cs.CoreV1().Services(c.ns).Delete(ctx, ref.group, opts))
	} else {
		errs = append(errs, c.cs.CoreV1().Pods(c.ns).Delete(ctx, ref.group, opts))
	}
	errs = append(errs, c.cs.CoreV1().Secrets(c.ns).Delete(ctx, ref.group, opts))
	for _, err := range errs {
		if err != nil && !apierrors.IsNotFound(err) {
			return kube.Explain(conn2(c), err)
		}
	}
	p.mu.Lock()
	for nid, r := range p.nodes {
		if r.conn == c.key && r.group == ref.group {
			delete(p.nodes, nid)
			delete(p.seen, nid)
		}
	}
	p.mu.Unlock()
	return nil
}

// Adopt implements provider.Adopter: after a restart, a node of the
// store whose pod or Job the watch of its target still holds is this
// provider's again, so its agent, which keeps calling the server, goes
// on with its run. A node whose target cannot be watched now is kept:
// the target's reconciler asks its state once the watch works.
func (p *Provider) Adopt(ctx context.Context, ids []string) []string {
	var alive []string
	for _, id := range ids {
		if _, _, err := p.lookup(ctx, id); err != nil {
			if !errors.Is(err, api.ErrNotFound) {
				p.log.Warn("cannot tell whether a node survived the restart; keeping it", "node", id, "err", err)
				alive = append(alive, id)
			}
			continue
		}
		p.mu.Lock()
		_, found := p.nodes[id]
		p.mu.Unlock()
		if found {
			alive = append(alive, id)
		}
	}
	return alive
}

// List implements provider.Provider: the nodes this server made or
// adopted (see Adopt).
func (p *Provider) List(context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.nodes)), nil
}

// Preempt implements provider.Preempter: the node's pod is deleted, as a
// drain or the scheduler's preemption would.
func (p *Provider) Preempt(ctx context.Context, id string) error {
	_, c, err := p.lookup(ctx, id)
	if err != nil {
		return err
	}
	objs, _ := c.pods.GetIndexer().ByIndex("node", id)
	if len(objs) == 0 {
		return api.Conflict("node %s has no pod yet", id)
	}
	for _, o := range objs {
		pod := o.(*corev1.Pod)
		if err := c.cs.CoreV1().Pods(c.ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return kube.Explain(conn2(c), err)
		}
	}
	return nil
}

// ClusterNodes is the cluster's nodes as the watch sees them; ok is false
// when the credentials may not watch nodes.
func (p *Provider) ClusterNodes(ctx context.Context, ws, name string) ([]kube.Node, bool, error) {
	c, err := p.open(ctx, ws, name)
	if err != nil {
		return nil, false, err
	}
	if c.nodes == nil {
		return nil, false, nil
	}
	var items []corev1.Node
	for _, o := range c.nodes.GetStore().List() {
		items = append(items, *o.(*corev1.Node))
	}
	return kube.Nodes(items), true, nil
}

// CloseTarget implements provider.TargetCloser: the target's watches stop.
func (p *Provider) CloseTarget(ws, name string) {
	key := store.Key(ws, name)
	p.mu.Lock()
	c := p.conns[key]
	delete(p.conns, key)
	p.mu.Unlock()
	if c != nil {
		c.close()
		p.log.Info("stopped watching a Kubernetes namespace", "target", name, "namespace", c.ns)
	}
}

func kubeQuantity(n int) *resource.Quantity {
	return resource.NewQuantity(int64(n), resource.DecimalSI)
}
