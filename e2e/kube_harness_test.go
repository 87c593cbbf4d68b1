package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// kubeEnv is the control plane scripts/dev-k8s.sh started (a real
// kube-apiserver, controller-manager and scheduler; kwok as the kubelet)
// and a namespace of this test's own, deleted at its end.
type kubeEnv struct {
	t      testing.TB
	cs     *kubernetes.Clientset
	server string // the API server's URL
	ns     string
	admin  []byte // an admin kubeconfig
}

// kubeconfigOfDevCluster is where scripts/dev-k8s.sh writes its admin
// kubeconfig. The tests never use $KUBECONFIG: they create and delete
// objects, and must not do that in a real cluster.
func kubeconfigOfDevCluster() string {
	dir := os.Getenv("PADDOCK_K8S_DIR")
	if dir == "" {
		dir = "/tmp/paddock-k8s"
	}
	return filepath.Join(dir, "state", "kubeconfig")
}

// needKube finds the dev control plane; without one the Kubernetes tests
// skip (naming the command that starts it), except in CI where they fail.
func needKube(t testing.TB) *kubeEnv {
	t.Helper()
	path := kubeconfigOfDevCluster()
	admin, err := os.ReadFile(path)
	var cs *kubernetes.Clientset
	var server string
	if err == nil {
		var cfg *clientcmdConfig
		cfg, err = loadKubeconfig(admin)
		if err == nil {
			cs, server = cfg.cs, cfg.server
			_, err = cs.Discovery().ServerVersion()
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Kubernetes control plane at %s (.ci/run starts one with scripts/dev-k8s.sh): %v", path, err)
		}
		t.Skip("no Kubernetes control plane: `bash scripts/dev-k8s.sh start` (as root, `bash scripts/test.sh` starts one)")
	}
	k := &kubeEnv{t: t, cs: cs, server: server, admin: admin, ns: "pdk-e2e-" + randHex(4)}
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.CoreV1().Namespaces().Delete(context.Background(), k.ns, metav1.DeleteOptions{})
	})
	return k
}

// kubeTest starts a Kubernetes test: the dev control plane with a
// namespace of the test's own, and a server (paddock up with extra) whose
// log the test prints should it fail.
func kubeTest(t *testing.T, extra ...string) (*kubeEnv, *env, *server) {
	t.Helper()
	k := needKube(t)
	e := newEnv(t)
	srv := e.up(extra...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(srv.Logs())
		}
	})
	return k, e, srv
}

type clientcmdConfig struct {
	cs     *kubernetes.Clientset
	server string
}

func loadKubeconfig(data []byte) (*clientcmdConfig, error) {
	rc, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return nil, err
	}
	rc.Timeout = 10 * time.Second
	rc.QPS, rc.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	return &clientcmdConfig{cs: cs, server: rc.Host}, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// kubeconfig writes a kubeconfig for the dev cluster with a bearer token
// and returns its path.
func (k *kubeEnv) kubeconfig(dir, name, server, token, ns string) string {
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: dev
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: %s
  user: {token: %q}
contexts:
- name: %s
  context: {cluster: dev, user: %s, namespace: %s}
current-context: %s
`, server, name, token, name, name, ns, name)
	path := filepath.Join(dir, name+".kubeconfig")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		k.t.Fatal(err)
	}
	return path
}

// rbacManifest is the manifest docs/kubernetes.md gives users, for this
// test's namespace and with names of its own.
func (k *kubeEnv) rbacManifest() [][]byte {
	k.t.Helper()
	doc, err := os.ReadFile("../docs/kubernetes.md")
	if err != nil {
		k.t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- rbac:[^>]*-->\\s*```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		k.t.Fatal("docs/kubernetes.md has no RBAC manifest after <!-- rbac: ... -->")
	}
	text := strings.ReplaceAll(string(m[1]), "namespace: ml", "namespace: "+k.ns)
	// Cluster-wide objects get names of the test's own.
	text = strings.ReplaceAll(text, "paddock-nodes-reader-ml", "pdk-nodes-binding-"+k.ns)
	text = strings.ReplaceAll(text, "paddock-nodes-reader", "pdk-nodes-reader-"+k.ns)
	var docs [][]byte
	for _, d := range strings.Split(text, "\n---\n") {
		docs = append(docs, []byte(d))
	}
	return docs
}

// serviceAccount applies the documented manifest (withNodes: with its
// optional ClusterRole) and returns a token of its service account.
func (k *kubeEnv) serviceAccount(withNodes bool) string {
	k.t.Helper()
	ctx := context.Background()
	for _, d := range k.rbacManifest() {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(d, &meta); err != nil {
			k.t.Fatal(err)
		}
		var err error
		switch meta.Kind {
		case "ServiceAccount":
			var o corev1.ServiceAccount
			mustYAML(k.t, d, &o)
			_, err = k.cs.CoreV1().ServiceAccounts(k.ns).Create(ctx, &o, metav1.CreateOptions{})
		case "Role":
			var o rbacv1.Role
			mustYAML(k.t, d, &o)
			_, err = k.cs.RbacV1().Roles(k.ns).Create(ctx, &o, metav1.CreateOptions{})
		case "RoleBinding":
			var o rbacv1.RoleBinding
			mustYAML(k.t, d, &o)
			_, err = k.cs.RbacV1().RoleBindings(k.ns).Create(ctx, &o, metav1.CreateOptions{})
		case "ClusterRole":
			if !withNodes {
				continue
			}
			var o rbacv1.ClusterRole
			mustYAML(k.t, d, &o)
			_, err = k.cs.RbacV1().ClusterRoles().Create(ctx, &o, metav1.CreateOptions{})
			name := o.Name
			k.t.Cleanup(func() {
				k.cs.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
			})
		case "ClusterRoleBinding":
			if !withNodes {
				continue
			}
			var o rbacv1.ClusterRoleBinding
			mustYAML(k.t, d, &o)
			_, err = k.cs.RbacV1().ClusterRoleBindings().Create(ctx, &o, metav1.CreateOptions{})
			name := o.Name
			k.t.Cleanup(func() {
				k.cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
			})
		default:
			k.t.Fatalf("the RBAC manifest has a %s", meta.Kind)
		}
		if err != nil {
			k.t.Fatalf("applying the documented %s: %v", meta.Kind, err)
		}
	}
	exp := int64(3600)
	tok, err := k.cs.CoreV1().ServiceAccounts(k.ns).CreateToken(ctx, "paddock",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		k.t.Fatal(err)
	}
	return tok.Status.Token
}

func mustYAML(t testing.TB, data []byte, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Fatalf("%v in\n%s", err, data)
	}
}

// attach attaches the test's namespace as target name with the
// documented service account and returns the kubeconfig's token.
func (k *kubeEnv) attach(e *env, name string, extra ...string) string {
	k.t.Helper()
	token := k.serviceAccount(true)
	kc := k.kubeconfig(e.home, name, k.server, token, k.ns)
	e.ok(append([]string{"compute", "attach", "kubernetes", name, "--kubeconfig", kc}, extra...)...)
	return token
}

// selector selects what Paddock made for a run.
func runSelector(runID string) metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: "paddock.dev/run=" + runID}
}

// jobOf waits for the (one) Job of a run and returns it.
func (k *kubeEnv) jobOf(runID string, not ...string) *batchv1.Job {
	k.t.Helper()
	var job *batchv1.Job
	eventually(k.t.(*testing.T), 30*time.Second, "a Job for run "+runID, func() bool {
		jobs, err := k.cs.BatchV1().Jobs(k.ns).List(context.Background(), runSelector(runID))
		if err != nil {
			return false
		}
		for i := range jobs.Items {
			j := &jobs.Items[i]
			if j.DeletionTimestamp == nil && !contains(not, j.Name) {
				job = j
				return true
			}
		}
		return false
	})
	return job
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// podsOf waits for n pods of a group (a Job or a cluster node) that kwok
// has made Running, by index.
func (k *kubeEnv) podsOf(group string, n int) []corev1.Pod {
	k.t.Helper()
	var pods []corev1.Pod
	eventually(k.t.(*testing.T), 30*time.Second, fmt.Sprintf("%d running pods of %s", n, group), func() bool {
		list, err := k.cs.CoreV1().Pods(k.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "paddock.dev/group=" + group})
		if err != nil {
			return false
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		return len(pods) == n
	})
	// By index (a cluster node's pod has none: one pod).
	for i := range pods {
		for j := range pods {
			if pods[j].Annotations["batch.kubernetes.io/job-completion-index"] == fmt.Sprint(i) {
				pods[i], pods[j] = pods[j], pods[i]
			}
		}
	}
	return pods
}

// endPod has kwok end a Running pod: succeeded, failed or evicted (see
// scripts/dev-k8s-kwok.yaml).
func (k *kubeEnv) endPod(name, how string) {
	k.t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"paddock.dev/kwok-result":%q}}}`, how)
	if _, err := k.cs.CoreV1().Pods(k.ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		k.t.Fatal(err)
	}
}

// leftovers lists what Paddock made in the namespace that is still there.
func (k *kubeEnv) leftovers() []string {
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=paddock"}
	var out []string
	if l, err := k.cs.BatchV1().Jobs(k.ns).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			out = append(out, "job/"+o.Name)
		}
	}
	if l, err := k.cs.CoreV1().Pods(k.ns).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			out = append(out, "pod/"+o.Name)
		}
	}
	if l, err := k.cs.CoreV1().Services(k.ns).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			out = append(out, "service/"+o.Name)
		}
	}
	if l, err := k.cs.CoreV1().Secrets(k.ns).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			out = append(out, "secret/"+o.Name)
		}
	}
	return out
}

func (k *kubeEnv) nothingLeft(what string) {
	k.t.Helper()
	eventually(k.t.(*testing.T), 30*time.Second, "nothing of Paddock's left in the namespace "+what, func() bool { return len(k.leftovers()) == 0 })
}

// localPod runs a pod's init containers, then its container, as local
// processes: its command and arguments, its environment (values, field
// references, $(VAR) expansion), its volumes as local directories (the
// Secret's keys as files). It proves the pod contract without a kubelet:
// what Paddock put in the pod is enough to run the run.
type localPod struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

func (k *kubeEnv) runPodLocally(e *env, pod corev1.Pod) *localPod {
	t := k.t
	t.Helper()
	root := t.TempDir()
	dirs := map[string]string{} // volume name → local dir
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(root, v.Name)
		os.MkdirAll(dir, 0o755)
		dirs[v.Name] = dir
		if v.Secret != nil {
			s := k.secret(v.Secret.SecretName)
			for key, val := range s.Data {
				os.WriteFile(filepath.Join(dir, key), val, 0o400)
			}
		}
	}
	prepare := func(c corev1.Container) *exec.Cmd {
		mounts := map[string]string{}
		for _, m := range c.VolumeMounts {
			mounts[m.MountPath] = dirs[m.Name]
		}
		local := func(s string) string {
			for mp, dir := range mounts {
				s = strings.ReplaceAll(s, mp, dir)
			}
			return s
		}
		vars := map[string]string{}
		var env []string
		for _, ev := range c.Env {
			v := expand(ev.Value, vars)
			if f := ev.ValueFrom; f != nil && f.FieldRef != nil {
				v = fieldOf(t, pod, f.FieldRef.FieldPath)
			}
			vars[ev.Name] = v
			env = append(env, ev.Name+"="+local(v))
		}
		argv := append(append([]string(nil), c.Command...), c.Args...)
		for i := range argv {
			argv[i] = local(expand(argv[i], vars))
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = root
		cmd.Env = append(e.environ(), env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return cmd
	}
	for _, c := range pod.Spec.InitContainers {
		cmd := prepare(c)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("init container %s of pod %s, run locally: %v\n%s", c.Name, pod.Name, err, out)
		}
	}
	lp := &localPod{out: &bytes.Buffer{}, done: make(chan struct{})}
	lp.cmd = prepare(pod.Spec.Containers[0])
	lp.cmd.Stdout, lp.cmd.Stderr = lp.out, lp.out
	if err := lp.cmd.Start(); err != nil {
		t.Fatalf("container %s of pod %s, run locally: %v", pod.Spec.Containers[0].Name, pod.Name, err)
	}
	go func() { lp.cmd.Wait(); close(lp.done) }()
	t.Cleanup(func() {
		lp.kill()
		e.noDataRaces("the agent of pod "+pod.Name, lp.out.String())
	})
	return lp
}

// secret waits for a Secret (Paddock makes a group's Secret right after
// its Job or pod, as the kubelet waits for it) and returns it.
func (k *kubeEnv) secret(name string) *corev1.Secret {
	k.t.Helper()
	var s *corev1.Secret
	eventually(k.t.(*testing.T), 30*time.Second, "Secret "+name, func() bool {
		var err error
		s, err = k.cs.CoreV1().Secrets(k.ns).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil
	})
	return s
}

// kill stops the pod's processes, as a kubelet would.
func (lp *localPod) kill() {
	select {
	case <-lp.done:
	default:
		syscall.Kill(-lp.cmd.Process.Pid, syscall.SIGKILL)
		<-lp.done
	}
}

// exited waits for the container to end by itself and returns its exit
// code.
func (lp *localPod) exited(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-lp.done:
		return lp.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("the pod's container did not exit within %s; it printed:\n%s", within, lp.out.String())
		return 0
	}
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand does Kubernetes' $(VAR) expansion of command, args and env values.
func expand(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// fieldOf is a pod field as the downward API gives it.
func fieldOf(t testing.TB, pod corev1.Pod, path string) string {
	if m := regexp.MustCompile(`^metadata\.annotations\['(.*)'\]$`).FindStringSubmatch(path); m != nil {
		return pod.Annotations[m[1]]
	}
	if m := regexp.MustCompile(`^metadata\.labels\['(.*)'\]$`).FindStringSubmatch(path); m != nil {
		return pod.Labels[m[1]]
	}
	switch path {
	case "metadata.name":
		return pod.Name
	case "metadata.namespace":
		return pod.Namespace
	case "status.podIP":
		return pod.Status.PodIP
	}
	t.Fatalf("the pod refers to field %s, which this test does not resolve", path)
	return ""
}

func tokenRequest(seconds int64) *authnv1.TokenRequest {
	return &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &seconds}}
}

func mustQty(s string) resource.Quantity { return resource.MustParse(s) }

func yamlUnmarshal(data []byte, v any) error { return yaml.Unmarshal(data, v) }
