package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Attaching checks the cluster before anything is stored, and says what
// is wrong: unreachable, unauthorized, a permission missing, no such
// namespace. The kubeconfig is never shown. A target attached with the
// documented service account shows the cluster's nodes.
func TestKubernetesAttach(t *testing.T) {
	k, e, srv := kubeTest(t)
	dir := t.TempDir()

	// Nothing listens: unreachable.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "https://" + ln.Addr().String()
	ln.Close()
	attach := func(kc string, extra ...string) result {
		return e.run(append([]string{"compute", "attach", "kubernetes", "k8s", "--kubeconfig", kc}, extra...)...)
	}
	if r := attach(k.kubeconfig(dir, "nowhere", closed, "x", k.ns)); r.code != 1 || !strings.Contains(r.stderr, "is unreachable") {
		t.Errorf("an unreachable API: exit %d %q", r.code, r.stderr)
	}
	if r := attach(k.kubeconfig(dir, "stranger", k.server, "not-a-token", k.ns)); r.code != 2 || !strings.Contains(r.stderr, "refused the kubeconfig's credentials (401 Unauthorized)") {
		t.Errorf("a wrong token: exit %d %q", r.code, r.stderr)
	}
	// A service account without the Role: the first permission it lacks.
	ctx := context.Background()
	if _, err := k.cs.CoreV1().ServiceAccounts(k.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nobody := k.tokenOf("nobody")
	if r := attach(k.kubeconfig(dir, "nobody", k.server, nobody, k.ns)); r.code != 2 ||
		!strings.Contains(r.stderr, "may not create jobs.batch in namespace "+k.ns) || !strings.Contains(r.stderr, "docs/kubernetes.md") {
		t.Errorf("no permissions: exit %d %q", r.code, r.stderr)
	}
	token := k.serviceAccount(true)
	kc := k.kubeconfig(dir, "paddock", k.server, token, k.ns)
	if r := attach(kc, "--namespace", "no-such-ns"); r.code != 2 || !strings.Contains(r.stderr, `has no namespace "no-such-ns"`) {
		t.Errorf("a missing namespace: exit %d %q", r.code, r.stderr)
	}
	if r := attach(kc, "--context", "prod"); r.code != 2 || !strings.Contains(r.stderr, `no context "prod"`) {
		t.Errorf("a missing context: exit %d %q", r.code, r.stderr)
	}
	execKC := filepath.Join(dir, "exec.kubeconfig")
	os.WriteFile(execKC, []byte(strings.Replace(string(mustRead(t, kc)), "user: {token:", "user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/true}, token:", 1)), 0o600)
	if r := attach(execKC); r.code != 2 || !strings.Contains(r.stderr, "by running a command (exec)") {
		t.Errorf("an exec kubeconfig: exit %d %q", r.code, r.stderr)
	}
	if out := e.ok("compute", "list", "-o", "json"); strings.Contains(out, `"k8s"`) {
		t.Fatalf("a failed attach left a target: %s", out)
	}

	c := decodeJSON[api.Compute](t, e.ok("compute", "attach", "kubernetes", "k8s", "--kubeconfig", kc, "-o", "json",
		"--instance-type", "small=cpu:1,memory:2Gi", "--instance-type", "big=cpu:8,memory:32Gi,gpu:1,selector:gpu=a100"))
	var st struct {
		Reachable bool
		NodeCount int `json:"node_count"`
		Cores     float64
		Nodes     []struct {
			Name  string
			Ready bool
			Cores float64
		}
	}
	jsonInto(t, c.Status, &st)
	if !st.Reachable || st.NodeCount < 1 || st.Cores < 32 || st.Nodes[0].Name != "kwok-node-0" || !st.Nodes[0].Ready {
		t.Errorf("status after attach: %s", c.Status)
	}
	p := props(t, c)
	if p["namespace"] != k.ns || p["server"] != k.server || p["image"] != "python:3.12-slim" {
		t.Errorf("properties: %v", p)
	}
	if it, _ := json.Marshal(p["instance_types"]); string(it) != `{"big":{"cpu":"8","gpu":1,"memory":"32Gi","node_selector":{"gpu":"a100"}},"small":{"cpu":"1","memory":"2Gi"}}` {
		t.Errorf("instance types: %s", it)
	}
	show := e.ok("compute", "show", "k8s")
	for _, want := range []string{"kubeconfig:\t(set, write-only)", "name=kwok-node-0", "node_count:\t1"} {
		if !strings.Contains(strings.Join(strings.Fields(show), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("compute show lacks %q:\n%s", want, show)
		}
	}
	for where, text := range map[string]string{"show": show, "show -o json": e.ok("compute", "show", "k8s", "-o", "json"),
		"list": e.ok("compute", "list", "-o", "yaml"), "the server's log": srv.Logs()} {
		if strings.Contains(text, token) || strings.Contains(text, nobody) {
			t.Errorf("%s shows a kubeconfig's token", where)
		}
	}
	// A second node appears in the status: the server watches them.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "kwok-e2e-" + k.ns, Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		Labels: map[string]string{"type": "kwok"}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{"cpu": mustQty("4"), "memory": mustQty("8Gi"), "nvidia.com/gpu": mustQty("2")}}}
	// Tainted, so that no other test's pods land on it.
	node.Spec.Taints = []corev1.Taint{{Key: "paddock.dev/e2e", Effect: corev1.TaintEffectNoSchedule}}
	if _, err := k.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.cs.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	eventually(t, 20*time.Second, "the new node in the target's status", func() bool {
		var st struct{ GPUs int }
		c := decodeJSON[api.Compute](t, e.ok("compute", "show", "k8s", "-o", "json"))
		jsonInto(t, c.Status, &st)
		return st.GPUs == 2
	})
	e.ok("compute", "detach", "k8s")
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tokenOf is a token of a service account of the test's namespace.
func (k *kubeEnv) tokenOf(sa string) string {
	k.t.Helper()
	exp := int64(3600)
	tok, err := k.cs.CoreV1().ServiceAccounts(k.ns).CreateToken(context.Background(), sa, tokenRequest(exp), metav1.CreateOptions{})
	if err != nil {
		k.t.Fatal(err)
	}
	return tok.Status.Token
}

// Runs become Jobs, checked against the real API; kwok drives their pods
// and the run follows: a pending pod's reason (the real scheduler's, an
// image pull error), a running pod waiting for its agent, an evicted pod
// (a new Job for the run), pods that keep failing (the run fails), cancel
// (nothing left), a multi-node run (an Indexed Job and a headless Service).
func TestKubernetesJobs(t *testing.T) {
	k, e, _ := kubeTest(t)
	k.attach(e, "k8s", "--server-url", "http://paddock.invalid:8765")
	ctx := context.Background()

	id := e.submit2("k8s", "--max-run-duration", "10m", "--", "python3", "-c", "print(1)")
	job := k.jobOf(id)
	ps := job.Spec.Template.Spec
	c := ps.Containers[0]
	args := strings.Join(c.Args, " ")
	switch {
	case *job.Spec.Completions != 1 || *job.Spec.BackoffLimit != 0 || *job.Spec.CompletionMode != "Indexed":
		t.Errorf("job spec: %+v", job.Spec)
	case c.Image != "python:3.12-slim" || ps.InitContainers[0].Image != c.Image:
		t.Errorf("images: %s %s", c.Image, ps.InitContainers[0].Image)
	case !strings.Contains(args, "agent ") || !strings.Contains(args, "--one-run") || !strings.Contains(args, "--cores 1"):
		t.Errorf("the agent's arguments: %s", args)
	case c.Resources.Requests.Cpu().String() != "1" || c.Resources.Limits.Cpu().String() != "1":
		t.Errorf("resources: %+v", c.Resources)
	case ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken:
		t.Error("the run's pod gets a service account token")
	case ps.ActiveDeadlineSeconds == nil || *ps.ActiveDeadlineSeconds != 11*60+300:
		t.Errorf("activeDeadlineSeconds: %v", ps.ActiveDeadlineSeconds)
	}
	sec := k.secret(job.Name)
	if string(sec.Data["server-url"]) != "http://paddock.invalid:8765" || !strings.HasPrefix(string(sec.Data["token-0"]), "pdn_") ||
		len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].Name != job.Name || sec.OwnerReferences[0].UID != job.UID {
		t.Errorf("the Job's Secret: %+v", sec.ObjectMeta)
	}
	// kwok runs the pod; no agent connects (nothing executes under kwok).
	pod := k.podsOf(job.Name, 1)[0]
	eventually(t, 20*time.Second, "the run's reason to say its pod runs", func() bool {
		return strings.Contains(e.show(id).StatusReason, "pod running; waiting for its agent to connect")
	})
	// Evicted: a new Job for the run.
	k.endPod(pod.Name, "evicted")
	job2 := k.jobOf(id, job.Name)
	eventually(t, 20*time.Second, "the evicted pod's Job to go", func() bool {
		_, err := k.cs.BatchV1().Jobs(k.ns).Get(ctx, job.Name, metav1.GetOptions{})
		return err != nil
	})
	if r := e.show(id); r.Status != api.RunQueued || len(r.Attempts) != 0 {
		t.Errorf("after an eviction before the run started: %s %+v", r.Status, r.Attempts)
	}
	// Its pods fail three times before their agent connects: the run fails.
	for i, prev := 0, []string{job.Name}; i < 3; i++ {
		j := job2
		if i > 0 {
			j = k.jobOf(id, prev...)
		}
		prev = append(prev, j.Name)
		k.endPod(k.podsOf(j.Name, 1)[0].Name, "failed")
	}
	eventually(t, 30*time.Second, "the run to fail", func() bool { return e.show(id).Status == api.RunFailed })
	if r := e.show(id); r.StatusReason != "PodFailed" || !strings.Contains(r.Error, "failed 3 times before their agent connected") ||
		!strings.Contains(r.Error, "container run exited with code 1") {
		t.Errorf("the failed run: %q %q", r.StatusReason, r.Error)
	}
	k.nothingLeft("after the failed run")

	// More GPUs than any node has: the scheduler's reason.
	gpu := e.submit2("k8s", "--gpus", "4", "--", "nvidia-smi")
	eventually(t, 30*time.Second, "the scheduler's reason", func() bool {
		return strings.Contains(e.show(gpu).StatusReason, "Insufficient nvidia.com/gpu")
	})
	gj := k.jobOf(gpu)
	if q := gj.Spec.Template.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"]; q.Value() != 4 {
		t.Errorf("GPU limit: %v", q)
	}
	r := e.show(gpu)
	if !strings.HasPrefix(r.StatusReason, "Kubernetes: Unschedulable: 0/") {
		t.Errorf("reason: %q", r.StatusReason)
	}
	// An image that cannot be pulled.
	img := e.submit2("k8s", "--image", "registry.invalid/paddock/missing:1", "--", "true")
	eventually(t, 30*time.Second, "the image pull error as the reason", func() bool {
		return strings.Contains(e.show(img).StatusReason, "ErrImagePull")
	})
	// Cancel: the Jobs go with everything they had.
	e.ok("run", "cancel", gpu)
	e.ok("run", "cancel", img)
	k.nothingLeft("after cancel")

	// Three nodes: an Indexed Job of three pods, a headless Service.
	multi := e.submit2("k8s", "--nodes", "3", "--cores", "2", "--memory-gb", "1.5", "--", "hostname")
	mj := k.jobOf(multi)
	pods := k.podsOf(mj.Name, 3)
	svc, err := k.cs.CoreV1().Services(k.ns).Get(ctx, mj.Name, metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("the run's Service: %v %+v", err, svc)
	}
	for i, p := range pods {
		if p.Spec.Hostname != fmt.Sprintf("%s-%d", mj.Name, i) || p.Spec.Subdomain != mj.Name {
			t.Errorf("pod %d: hostname %q subdomain %q", i, p.Spec.Hostname, p.Spec.Subdomain)
		}
		if m := p.Spec.Containers[0].Resources.Limits.Memory().String(); m != "1536Mi" {
			t.Errorf("pod %d memory %s", i, m)
		}
	}
	e.ok("run", "cancel", multi)
	k.nothingLeft("after cancelling the multi-node run")
	e.ok("compute", "detach", "k8s")
}

// A pod that ends before its agent connects, or whose node goes, ends
// the run's Job and the run gets a new one: a pod that succeeded (its
// agent exited early), and a pod evicted from a node that is lost (a
// NoExecute taint, as the node controller or a drain sets; the real taint
// controller evicts the pod). The run's instance type puts its pod on a
// node of the test's own.
func TestKubernetesPodEnds(t *testing.T) {
	k, e, srv := kubeTest(t)
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "kwok-lost-" + k.ns,
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		Labels:      map[string]string{"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH, "paddock.dev/e2e-node": k.ns}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{"cpu": mustQty("4"), "memory": mustQty("8Gi"), "pods": mustQty("10")}}}
	if _, err := k.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.cs.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	k.attach(e, "k8s", "--instance-type", "here=cpu:1,memory:1Gi,selector:paddock.dev/e2e-node="+k.ns)
	id := e.submit2("k8s", "--", "true")
	j1 := k.jobOf(id)
	p1 := k.podsOf(j1.Name, 1)[0]
	if p1.Spec.NodeName != node.Name {
		t.Fatalf("the pod runs on %q, not on the instance type's node %s", p1.Spec.NodeName, node.Name)
	}
	k.endPod(p1.Name, "succeeded")
	j2 := k.jobOf(id, j1.Name)
	k.podsOf(j2.Name, 1)
	eventually(t, 20*time.Second, "the first Job to go", func() bool {
		_, err := k.cs.BatchV1().Jobs(k.ns).Get(ctx, j1.Name, metav1.GetOptions{})
		return err != nil
	})
	if r := e.show(id); r.Status != api.RunQueued || len(r.Attempts) != 0 {
		t.Errorf("after a pod that ended before its agent connected: %s %+v", r.Status, r.Attempts)
	}
	// The node is lost: the taint controller evicts its pod.
	node, err := k.cs.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: "paddock.dev/e2e-lost", Effect: corev1.TaintEffectNoExecute})
	if _, err := k.cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	k.jobOf(id, j1.Name, j2.Name)
	eventually(t, 20*time.Second, "the lost node's Job to go", func() bool {
		_, err := k.cs.BatchV1().Jobs(k.ns).Get(ctx, j2.Name, metav1.GetOptions{})
		return err != nil
	})
	// Its new pod has nowhere to go: the scheduler says why.
	eventually(t, 30*time.Second, "the scheduler's reason", func() bool {
		return strings.Contains(e.show(id).StatusReason, "Unschedulable")
	})
	if r := e.show(id); r.Status != api.RunQueued {
		t.Errorf("after its node was lost: %s %q", r.Status, r.StatusReason)
	}
	// What the server made of each end (in its log: the run never started,
	// so it has no attempt to show it): the early exit counts against the
	// run's tries, the eviction does not.
	logs := srv.Logs()
	for _, want := range []string{`preempted=false why="its agent exited before the run ended"`,
		`preempted=true why="its pod was evicted from its node (a NoExecute taint`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the server's log lacks %s", want)
		}
	}
	e.ok("run", "cancel", id)
	k.nothingLeft("after cancel")
	e.ok("compute", "detach", "k8s")
}

// The pod contract, end to end: the pods Paddock made, their init
// container and container run as local processes against the same
// server, run a two-node run to completion with its logs, outputs and
// the distributed environment. Then a pod evicted while its run runs:
// the attempt ends Preempted, and the run restarts in a new Job.
func TestKubernetesPodContract(t *testing.T) {
	k, e, _ := kubeTest(t)
	k.attach(e, "k8s")
	src := filepath.Join(e.home, "src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "train.py", `import os
print("rank", os.environ["RANK"], "of", os.environ["WORLD_SIZE"], "master", os.environ["MASTER_ADDR"])
os.makedirs("outputs", exist_ok=True)
open("outputs/model-%s.txt" % os.environ["RANK"], "w").write("weights")
`)
	id := e.submit2("k8s", "--source", src, "--nodes", "2", "--", "python3", "train.py")
	job := k.jobOf(id)
	pods := k.podsOf(job.Name, 2)
	var lps []*localPod
	for _, p := range pods {
		lps = append(lps, k.runPodLocally(e, p))
	}
	r := e.waitRun(id)
	if r.Status != api.RunCompleted {
		t.Fatalf("the run: %s %s %q\n%s\n%s", r.Status, r.StatusReason, r.Error, lps[0].out, lps[1].out)
	}
	for i, lp := range lps {
		if code := lp.exited(t, 20*time.Second); code != 0 {
			t.Errorf("pod %d's agent exited %d:\n%s", i, code, lp.out)
		}
	}
	logs := e.ok("run", "logs", id)
	master := job.Name + "-0." + job.Name + "." + k.ns + ".svc"
	for _, want := range []string{"rank 0 of 2 master " + master, "rank 1 of 2 master " + master} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	dl := filepath.Join(e.home, "dl")
	e.ok("run", "download", id, "--to", dl)
	// Rank 0's outputs are the run's, as on every target.
	if data, _ := os.ReadFile(filepath.Join(dl, "model-0.txt")); string(data) != "weights" {
		t.Errorf("output model-0.txt: %q", data)
	}
	k.nothingLeft("after the run")

	// Evicted while running: preempted, restarted in a new Job.
	long := e.submit2("k8s", "--", "python3", "-c", "import os,time; print('attempt', os.environ['PADDOCK_ATTEMPT'], flush=True); time.sleep(0 if os.environ['PADDOCK_ATTEMPT'] == '2' else 300)")
	j1 := k.jobOf(long)
	p1 := k.podsOf(j1.Name, 1)[0]
	lp := k.runPodLocally(e, p1)
	eventually(t, 30*time.Second, "the run to run", func() bool { return e.show(long).Status == api.RunRunning })
	k.endPod(p1.Name, "evicted")
	j2 := k.jobOf(long, j1.Name)
	lp.kill() // the kubelet kills an evicted pod's containers
	run := e.show(long)
	if len(run.Attempts) != 1 || run.Attempts[0].Reason != "Preempted" || !strings.Contains(run.Attempts[0].Error, "evicted") {
		t.Errorf("the first attempt: %+v", run.Attempts)
	}
	lp2 := k.runPodLocally(e, k.podsOf(j2.Name, 1)[0])
	if r := e.waitRun(long); r.Status != api.RunCompleted || r.Attempt != 2 {
		t.Errorf("the restarted run: %s attempt %d\n%s", r.Status, r.Attempt, lp2.out)
	}
	k.nothingLeft("after the restarted run")
}

// A server killed while a run's pod runs: the restarted server adopts the
// pod's node from the watch of its target (the pod and Job survive the
// restart), the pod's agent goes on with the run, and the run completes in
// its first attempt with its whole log.
func TestKubernetesRunSurvivesServerRestart(t *testing.T) {
	k, e, srv := kubeTest(t)
	k.attach(e, "k8s")
	id := e.submit2("k8s", "--", "python3", "-c", "import time; print('before', flush=True); time.sleep(4); print('after')")
	job := k.jobOf(id)
	lp := k.runPodLocally(e, k.podsOf(job.Name, 1)[0])
	eventually(t, 30*time.Second, "the run to run", func() bool { return e.show(id).Status == api.RunRunning })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the pod's agent:\n%s", lp.out)
		}
	})
	srv = e.restartMidRun(srv, id, "--listen", strings.TrimPrefix(srv.url, "http://")) // the URL the pod's agent knows
	if !strings.Contains(srv.Logs(), "adopted a node that survived the restart") {
		t.Errorf("the restarted server did not adopt the pod's node")
	}
	if code := lp.exited(t, 20*time.Second); code != 0 {
		t.Errorf("the pod's agent exited %d:\n%s", code, lp.out)
	}
	k.nothingLeft("after the run")
}

// A cluster with provider kubernetes gets its nodes as agent pods (a
// low-priority one with the target's PriorityClass and toleration); a
// node's pod, run locally, runs the cluster's runs; an evicted pod is a
// lost node whose run restarts; scale-down deletes the pod.
func TestKubernetesProviderCluster(t *testing.T) {
	k, e, _ := kubeTest(t)
	ctx := context.Background()
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "paddock-low-" + k.ns}, Value: -10}
	if _, err := k.cs.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		k.cs.SchedulingV1().PriorityClasses().Delete(context.Background(), pc.Name, metav1.DeleteOptions{})
	})
	if r := e.run("compute", "attach", "kubernetes", "nope", "--kubeconfig", k.kubeconfig(e.home, "admin", k.server, kubeAdminToken(t, k.admin), k.ns),
		"--lowpriority-priority-class", "no-such-class"); r.code != 2 || !strings.Contains(r.stderr, `no PriorityClass "no-such-class"`) {
		t.Errorf("a missing PriorityClass: exit %d %q", r.code, r.stderr)
	}
	k.attach(e, "k8s", "--lowpriority-priority-class", pc.Name, "--lowpriority-toleration", "spot=true:NoSchedule")
	e.ok("compute", "create", "cluster", "spot", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1",
		"--vm-priority", "lowpriority", "--provider", "kubernetes", "--from", "k8s", "--idle-seconds-before-scaledown", "2")
	id := e.submit2("spot", "--", "python3", "-c", "import os,time; print('attempt', os.environ['PADDOCK_ATTEMPT'], flush=True); time.sleep(0 if os.environ['PADDOCK_ATTEMPT'] == '2' else 300)")
	var nodeID string
	eventually(t, 30*time.Second, "a node for the run", func() bool {
		n := e.nodes("spot")
		if len(n) == 1 {
			nodeID = n[0].ID
		}
		return nodeID != ""
	})
	pod := k.podsOf(nodeID, 1)[0]
	ps := pod.Spec
	if ps.PriorityClassName != pc.Name || len(ps.Tolerations) == 0 || ps.Tolerations[0].Key != "spot" ||
		ps.Containers[0].Resources.Limits.Cpu().String() != "2" || ps.Containers[0].Resources.Limits.Memory().String() != "7Gi" {
		t.Errorf("the node's pod: priority %q tolerations %+v resources %+v", ps.PriorityClassName, ps.Tolerations, ps.Containers[0].Resources)
	}
	if strings.Contains(strings.Join(ps.Containers[0].Args, " "), "--one-run") || len(pod.OwnerReferences) != 0 {
		t.Errorf("a cluster node's pod runs one run, or belongs to something: %v", ps.Containers[0].Args)
	}
	lp := k.runPodLocally(e, pod)
	eventually(t, 30*time.Second, "the run to run on the node", func() bool { return e.show(id).Status == api.RunRunning })
	// The pod is evicted: a lost node; the run restarts on a new one.
	k.endPod(pod.Name, "evicted")
	eventually(t, 30*time.Second, "the run to be requeued", func() bool { return len(e.show(id).Attempts) == 1 && e.show(id).Status == api.RunQueued })
	lp.kill()
	var node2 string
	eventually(t, 30*time.Second, "a new node", func() bool {
		for _, n := range e.nodes("spot") {
			if n.ID != nodeID {
				node2 = n.ID
			}
		}
		return node2 != ""
	})
	lp2 := k.runPodLocally(e, k.podsOf(node2, 1)[0])
	if r := e.waitRun(id); r.Status != api.RunCompleted || r.Attempts[0].Reason != "Preempted" {
		t.Errorf("the run: %s %+v\n%s", r.Status, r.Attempts, lp2.out)
	}
	// Idle for 2 s: scaled down, the pod deleted; its agent exits.
	eventually(t, 30*time.Second, "scale-down to zero", func() bool { return len(e.nodes("spot")) == 0 })
	k.nothingLeft("after scale-down")
	lp2.kill()
	e.ok("compute", "delete", "spot")
	e.ok("compute", "detach", "k8s")
}

// kubeAdminToken is the bearer token of the dev cluster's admin kubeconfig.
func kubeAdminToken(t *testing.T, kubeconfig []byte) string {
	var cfg struct {
		Users []struct {
			User struct{ Token string }
		}
	}
	if err := yamlUnmarshal(kubeconfig, &cfg); err != nil || len(cfg.Users) == 0 {
		t.Fatalf("the dev cluster's kubeconfig: %v", err)
	}
	return cfg.Users[0].User.Token
}

// With paddock up --tls the pods pin the server's CA: the Secret carries
// it, the init container fetches the agent trusting it and nothing else,
// the agent connects over HTTPS with it, and the run reaches the API with
// the CA file it is given.
func TestTLSKubernetesPod(t *testing.T) {
	k, e, _ := kubeTest(t, "--tls")
	k.attach(e, "k8s")
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "post.py", postMetric)
	id := e.submit2("k8s", "--source", src, "--", "python3", "post.py")
	job := k.jobOf(id)
	sec := k.secret(job.Name)
	if !strings.HasPrefix(string(sec.Data["server-url"]), "https://") ||
		!strings.Contains(string(sec.Data["ca.pem"]), "BEGIN CERTIFICATE") || strings.Contains(string(sec.Data["ca.pem"]), "PRIVATE KEY") {
		t.Fatalf("the Job's Secret has keys %v", keysOf(sec.Data))
	}
	lp := k.runPodLocally(e, k.podsOf(job.Name, 1)[0])
	if r := e.waitRun(id); r.Status != api.RunCompleted {
		t.Fatalf("the run: %s %q\n%s", r.Status, r.Error, lp.out)
	}
	if logs := e.ok("run", "logs", id); !strings.Contains(logs, "posted 201 to https ca True") {
		t.Errorf("the run's log: %s", logs)
	}
	if got := e.show(id).Metrics["loss"]; got.Value != 0.25 {
		t.Errorf("the run's metric: %+v", got)
	}
	k.nothingLeft("after the run")
	e.ok("compute", "detach", "k8s")
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
