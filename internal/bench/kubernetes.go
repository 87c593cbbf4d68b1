package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// benchImage and benchCommand are what every run and every bare Job of
// figure 8 runs (nothing executes under kwok: the pods only go Running).
const benchImage = "python:3.12-slim"

var benchCommand = []string{"python3", "-c", "pass"}

// devKubeconfig is the admin kubeconfig scripts/dev-k8s.sh writes.
func devKubeconfig() string {
	dir := os.Getenv("PADDOCK_K8S_DIR")
	if dir == "" {
		dir = "/tmp/paddock-k8s"
	}
	return filepath.Join(dir, "state", "kubeconfig")
}

// jobTimes records when the figure's own watch first saw each Job and
// each Job's pod Running.
type jobTimes struct {
	mu      sync.Mutex
	created map[string]time.Time // by Job name
	running map[string]time.Time // by Job name
	runOf   map[string]string    // Job name → Paddock run id
}

func (w *jobTimes) job(obj any) {
	j, ok := obj.(*batchv1.Job)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, seen := w.created[j.Name]; !seen {
		w.created[j.Name] = time.Now()
		if id := j.Labels["paddock.dev/run"]; id != "" {
			w.runOf[j.Name] = id
		}
	}
}

func (w *jobTimes) pod(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Status.Phase != corev1.PodRunning {
		return
	}
	job := p.Labels["batch.kubernetes.io/job-name"]
	if job == "" {
		job = p.Labels["job-name"]
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, seen := w.running[job]; !seen && job != "" {
		w.running[job] = time.Now()
	}
}

// latencies are, for Jobs asked for at the given times (by name): asked
// → Job seen, Job seen → pod Running, asked → pod Running, and how long
// after start the last pod went Running.
func (w *jobTimes) latencies(asked map[string]time.Time, start time.Time) (submit, run, total []time.Duration, all time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for job, t0 := range asked {
		created, running := w.created[job], w.running[job]
		submit = append(submit, created.Sub(t0))
		run = append(run, running.Sub(created))
		total = append(total, running.Sub(t0))
		all = max(all, running.Sub(start))
	}
	return submit, run, total, all
}

// counts is how many Jobs and Running pods the watch has seen.
func (w *jobTimes) counts() (int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.created), len(w.running)
}

// figureKubernetes (figure 8): the same n runs through a kubernetes target and as
// bare Jobs made with kubectl, on the dev control plane, timed by one
// watch of the namespace.
func figureKubernetes(ctx context.Context, cfg Config) ([]row, error) {
	const figure = "8. Kubernetes"
	target := "—"
	admin, err := os.ReadFile(devKubeconfig())
	var cs *k8s.Clientset
	if err == nil {
		restCfg, cerr := clientcmd.RESTConfigFromKubeConfig(admin)
		if cerr == nil {
			restCfg.QPS, restCfg.Burst = 200, 400
			cs, cerr = k8s.NewForConfig(restCfg)
		}
		if cerr == nil {
			_, cerr = cs.Discovery().ServerVersion()
		}
		err = cerr
	}
	if err != nil {
		return []row{{figure, "skipped: no Kubernetes control plane (bash scripts/dev-k8s.sh start)", target, ""}}, nil
	}
	kubectl := os.Getenv("KUBECTL")
	if kubectl == "" {
		kubectl, _ = exec.LookPath("kubectl")
	}
	n := size(cfg, 200, 5)
	b := make([]byte, 4)
	rand.Read(b)
	ns := "pdk-bench-" + hex.EncodeToString(b)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	defer cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	// Room for every pod at once: kwok nodes of the figure's own.
	nodes, err := benchNodes(ctx, cs, ns, (2*n+99)/100)
	defer func() {
		for _, name := range nodes {
			cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
		}
	}()
	if err != nil {
		return nil, err
	}

	w := &jobTimes{created: map[string]time.Time{}, running: map[string]time.Time{}, runOf: map[string]string{}}
	stop := make(chan struct{})
	defer close(stop)
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	f.Batch().V1().Jobs().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: w.job, UpdateFunc: func(_, o any) { w.job(o) }})
	f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: w.pod, UpdateFunc: func(_, o any) { w.pod(o) }})
	f.Start(stop)
	f.WaitForCacheSync(stop)

	// Paddock: one client submits n runs one after another.
	s, err := startServer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	props, _ := json.Marshal(map[string]any{"kubeconfig": string(admin), "namespace": ns, "image": benchImage})
	if _, err := s.client.CreateCompute(ctx, api.ComputeCreate{Name: "k8s", Type: "kubernetes", Properties: props}); err != nil {
		return nil, fmt.Errorf("attaching the dev cluster: %w", err)
	}
	if c, err := s.client.WaitCompute(ctx, "k8s", false, nil); err != nil || c.ProvisioningState != api.StateSucceeded {
		return nil, fmt.Errorf("attaching the dev cluster: %v %+v", err, c)
	}
	submitted := map[string]time.Time{}
	start := time.Now()
	for range n {
		t0 := time.Now()
		r, err := s.client.SubmitRun(ctx, api.RunSubmit{Compute: "k8s", Command: benchCommand}, "")
		if err != nil {
			return nil, err
		}
		submitted[r.ID] = t0
	}
	paddockRate := float64(n) / time.Since(start).Seconds()
	if err := waitJobs(ctx, w, n, 0); err != nil {
		return nil, fmt.Errorf("paddock's Jobs: %w", err)
	}
	w.mu.Lock()
	byJob := map[string]time.Time{}
	for job, id := range w.runOf {
		if t0, ok := submitted[id]; ok {
			byJob[job] = t0
		}
	}
	w.mu.Unlock()
	pSubmit, pRun, pTotal, pAll := w.latencies(byJob, start)
	for id := range submitted {
		if _, err := s.client.CancelRun(ctx, id); err != nil {
			return nil, err
		}
	}
	if err := waitNoJobs(ctx, cs, ns); err != nil {
		return nil, fmt.Errorf("after cancelling paddock's runs: %w", err)
	}
	cond := fmt.Sprintf("%d runs of `%s`, submitted one after another by one client, to a kubernetes target in a namespace of the dev control plane "+
		"(scripts/dev-k8s.sh: kube-apiserver, controller-manager and scheduler v1.32.13, kwok v0.7.0 nodes with room for every pod, pods go Running at once; the controller-manager makes the Jobs' pods at its default 20 requests/s, burst 30); "+
		"times are when the figure's own watch sees the Job, then its pod Running; %d cores shared by all", n, strings.Join(benchCommand, " "), runtime.NumCPU())
	rows := []row{{figure + ": Paddock", fmt.Sprintf("submit → Job created p50 %s, p99 %s; Job created → pod Running p50 %s, p99 %s; submit → pod Running p50 %s, p99 %s; %.0f submits/s; all %d Running %.1f s after the first submit",
		pct(pSubmit, .5), pct(pSubmit, .99), pct(pRun, .5), pct(pRun, .99), pct(pTotal, .5), pct(pTotal, .99), paddockRate, n, pAll.Seconds()), target, cond}}

	// The same as bare Jobs, made with kubectl one after another (at smoke
	// sizes without a kubectl, with client-go: the path is checked, the
	// numbers mean nothing anyway).
	create, how, err := jobCreator(ctx, cfg, cs, kubectl, admin, s.dir, ns)
	if err != nil || create == nil {
		return append(rows, row{figure + ": bare Jobs", "skipped: no kubectl (KUBECTL=$(bash scripts/dev-k8s.sh kubectl))", target, ""}), err
	}
	seen, _ := w.counts()
	kSubmitted := map[string]time.Time{}
	start = time.Now()
	for i := range n {
		name := fmt.Sprintf("bare-%d", i)
		t0 := time.Now()
		if err := create(bareJob(name, ns)); err != nil {
			return nil, err
		}
		kSubmitted[name] = t0
	}
	kubectlRate := float64(n) / time.Since(start).Seconds()
	if err := waitJobs(ctx, w, n, seen); err != nil {
		return nil, fmt.Errorf("kubectl's Jobs: %w", err)
	}
	kSubmit, kRun, kTotal, kAll := w.latencies(kSubmitted, start)
	bg := metav1.DeletePropagationBackground
	cs.BatchV1().Jobs(ns).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &bg}, metav1.ListOptions{})
	return append(rows, row{figure + ": bare Jobs", fmt.Sprintf("create → Job created p50 %s, p99 %s; Job created → pod Running p50 %s, p99 %s; create → pod Running p50 %s, p99 %s; %.0f creates/s; all %d Running %.1f s after the first create",
		pct(kSubmit, .5), pct(kSubmit, .99), pct(kRun, .5), pct(kRun, .99), pct(kTotal, .5), pct(kTotal, .99), kubectlRate, n, kAll.Seconds()), target,
		fmt.Sprintf("the same %d pods (image, command, 1 CPU, node selector) as Indexed Jobs of one pod, each made by %s one after another, same namespace, nodes and watch, right after Paddock's", n, how)}), nil
}

// jobCreator makes a bare Job: by `kubectl create -f -` (a process per
// Job, as a script would), else at smoke sizes with client-go; nil when
// there is no kubectl for a full run. how says which, for the table.
func jobCreator(ctx context.Context, cfg Config, cs k8s.Interface, kubectl string, admin []byte, dir, ns string) (create func(*batchv1.Job) error, how string, err error) {
	if kubectl == "" {
		if !cfg.Smoke {
			return nil, "", nil
		}
		return func(j *batchv1.Job) error {
			_, err := cs.BatchV1().Jobs(ns).Create(ctx, j, metav1.CreateOptions{})
			return err
		}, "client-go (no kubectl: smoke)", nil
	}
	kc := filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(kc, admin, 0o600); err != nil {
		return nil, "", err
	}
	out, _ := exec.Command(kubectl, "version", "--client", "-o", "json").Output()
	var v struct {
		ClientVersion struct{ GitVersion string } `json:"clientVersion"`
	}
	json.Unmarshal(out, &v)
	return func(j *batchv1.Job) error {
		manifest, _ := json.Marshal(j)
		cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kc, "-n", ns, "create", "-f", "-")
		cmd.Stdin = bytes.NewReader(manifest)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kubectl create: %v: %s", err, out)
		}
		return nil
	}, fmt.Sprintf("`kubectl create -f -` (kubectl %s, a process per Job)", v.ClientVersion.GitVersion), nil
}

func pct(d []time.Duration, p float64) string {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return ms(percentile(d, p))
}

// benchNodes adds count kwok nodes of 110 pods and 256 cores each and
// waits for them to be Ready.
func benchNodes(ctx context.Context, cs k8s.Interface, ns string, count int) ([]string, error) {
	var names []string
	for i := range max(count, 1) {
		name := fmt.Sprintf("%s-%d", ns, i)
		res := corev1.ResourceList{"cpu": resource.MustParse("256"), "memory": resource.MustParse("1Ti"), "pods": resource.MustParse("110")}
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH, "type": "kwok", "paddock.dev/bench": ns}},
			Status: corev1.NodeStatus{Allocatable: res, Capacity: res},
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return names, err
		}
		names = append(names, name)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, name := range names {
		for {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err == nil && nodeReady(n) {
				break
			}
			if time.Now().After(deadline) {
				return names, fmt.Errorf("kwok did not make node %s Ready in 60 s", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return names, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// bareJob is the Job kubectl makes: the pod of a Paddock run's Job, less
// Paddock (the same image, command, CPU and node selector).
func bareJob(name, ns string) *batchv1.Job {
	one, zero := int32(1), int32(0)
	mode := batchv1.IndexedCompletion
	cpu := corev1.ResourceList{"cpu": resource.MustParse("1")}
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: batchv1.JobSpec{CompletionMode: &mode, Completions: &one, Parallelism: &one, BackoffLimit: &zero,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				NodeSelector:  map[string]string{"kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH},
				Containers: []corev1.Container{{Name: "run", Image: benchImage, Command: benchCommand,
					Resources: corev1.ResourceRequirements{Requests: cpu, Limits: cpu}}},
			}}},
	}
}

// waitJobs waits until the watch has seen n more Jobs (than before) and
// as many pods Running.
func waitJobs(ctx context.Context, w *jobTimes, n, before int) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		jobs, running := w.counts()
		if jobs >= before+n && running >= before+n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d Jobs seen, %d pods Running, after 5 minutes", jobs-before, n, running-before)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitNoJobs waits until the namespace has no Job left.
func waitNoJobs(ctx context.Context, cs k8s.Interface, ns string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		l, err := cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s still has Jobs after 2 minutes", ns)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
