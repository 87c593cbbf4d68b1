// Package kube connects Paddock to a Kubernetes cluster through client-go:
// it turns a kubeconfig held as a secret into a client (refusing
// kubeconfigs that would run commands or read files on the server's host),
// checks at attach time that the API answers, the namespace exists and the
// credentials may do what Paddock does there, and reads the nodes'
// allocatable resources. Errors are written for the user and name the
// cause: unreachable, unauthorized, forbidden verb on resource, no such
// namespace. The kubeconfig never appears in an error or a log line.
package kube

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	authv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// GPUResource is the extended resource GPUs are requested as (the NVIDIA
// device plugin's).
const GPUResource corev1.ResourceName = "nvidia.com/gpu"

// Connection is where a target's cluster is and who Paddock is there.
type Connection struct {
	// Config is the client configuration made from the kubeconfig.
	Config *rest.Config
	// Namespace is where Paddock works: the one given, else the context's,
	// else "default".
	Namespace string
	// Server is the API server's URL, for messages.
	Server string
}

// Connect reads a kubeconfig (its content) and returns the connection of
// one of its contexts (the current one when context is empty). A
// kubeconfig that would run a command (exec, auth-provider) or read a file
// on the server's host (certificate or token paths) is refused: the server
// runs with its own privileges, and what a kubeconfig names there is not
// the user's.
func Connect(kubeconfig []byte, contextName, namespace string) (*Connection, error) {
	if len(strings.TrimSpace(string(kubeconfig))) == 0 {
		return nil, api.Invalid("kubeconfig", "kubeconfig is required: the content of a kubeconfig file (--kubeconfig FILE)")
	}
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, api.Invalid("kubeconfig", "kubeconfig is not a kubeconfig file Kubernetes can read: %s", firstLine(err))
	}
	if contextName == "" {
		contextName = cfg.CurrentContext
	}
	if contextName == "" {
		return nil, api.Invalid("context", "the kubeconfig has no current-context; name one with --context (it has %s)", contextNames(cfg))
	}
	kctx, ok := cfg.Contexts[contextName]
	if !ok {
		return nil, api.Invalid("context", "the kubeconfig has no context %q (it has %s)", contextName, contextNames(cfg))
	}
	cluster, ok := cfg.Clusters[kctx.Cluster]
	if !ok {
		return nil, api.Invalid("kubeconfig", "context %q names cluster %q, which the kubeconfig does not define", contextName, kctx.Cluster)
	}
	user := cfg.AuthInfos[kctx.AuthInfo]
	if err := selfContained(kctx.Cluster, cluster, kctx.AuthInfo, user); err != nil {
		return nil, err
	}
	if namespace == "" {
		namespace = kctx.Namespace
	}
	if namespace == "" {
		namespace = "default"
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(*cfg, contextName, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, api.Invalid("kubeconfig", "context %q of the kubeconfig cannot be used: %s", contextName, firstLine(err))
	}
	rc.UserAgent = "paddock"
	rc.Timeout = 30 * time.Second
	// Paddock reads through watches; its calls are creates and deletes, two
	// per run (a Job and its Secret). client-go's default (5 QPS) would
	// pace a burst of submissions at two Jobs a second; this lets a burst
	// of 100 runs through at once and 50 runs a second after it (twice a
	// kube-scheduler's default of 50 QPS, burst 100).
	rc.QPS, rc.Burst = 100, 200
	return &Connection{Config: rc, Namespace: namespace, Server: cluster.Server}, nil
}

// selfContained refuses what a kubeconfig would make the server do
// besides talk to the API: run a credential plugin, or read a file.
func selfContained(clusterName string, c *clientcmdapi.Cluster, userName string, u *clientcmdapi.AuthInfo) error {
	if c.Server == "" {
		return api.Invalid("kubeconfig", "cluster %q of the kubeconfig has no server URL", clusterName)
	}
	if c.CertificateAuthority != "" {
		return api.Invalid("kubeconfig", "cluster %q reads its CA from a file (certificate-authority); put the certificate in the kubeconfig as certificate-authority-data", clusterName)
	}
	if u == nil {
		return nil
	}
	switch {
	case u.Exec != nil:
		return api.Invalid("kubeconfig", "user %q gets its credentials by running a command (exec), which the server does not do; use a kubeconfig with a token or client-certificate-data (docs/kubernetes.md makes one for a service account)", userName)
	case u.AuthProvider != nil:
		return api.Invalid("kubeconfig", "user %q uses an auth-provider plugin, which the server does not run; use a kubeconfig with a token or client-certificate-data", userName)
	case u.ClientCertificate != "" || u.ClientKey != "":
		return api.Invalid("kubeconfig", "user %q reads its client certificate or key from a file; put them in the kubeconfig as client-certificate-data and client-key-data", userName)
	case u.TokenFile != "":
		return api.Invalid("kubeconfig", "user %q reads its token from a file (tokenFile); put the token in the kubeconfig", userName)
	}
	return nil
}

// Clientset is a client of the connection's cluster.
func (c *Connection) Clientset() (*kubernetes.Clientset, error) {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, api.Invalid("kubeconfig", "the kubeconfig cannot make a client: %s", firstLine(err))
	}
	return cs, nil
}

// Access is one thing Paddock must be allowed to do in its namespace.
type Access struct {
	Verb, Group, Resource string
}

func (a Access) String() string {
	if a.Group == "" {
		return a.Resource
	}
	return a.Resource + "." + a.Group
}

// Needed is what Paddock does in its namespace: it makes Jobs (runs) and
// Pods (cluster nodes), a headless Service per multi-node run and a Secret
// holding the node tokens of each (updated when a create is retried), and
// watches Jobs and Pods. docs/kubernetes.md has the
// Role that grants it.
var Needed = []Access{
	{"create", "batch", "jobs"}, {"delete", "batch", "jobs"}, {"get", "batch", "jobs"}, {"list", "batch", "jobs"}, {"watch", "batch", "jobs"},
	{"create", "", "pods"}, {"delete", "", "pods"}, {"get", "", "pods"}, {"list", "", "pods"}, {"watch", "", "pods"},
	{"create", "", "services"}, {"delete", "", "services"},
	{"create", "", "secrets"}, {"delete", "", "secrets"}, {"update", "", "secrets"},
}

// Node is one node of the cluster as the API reports it.
type Node struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	// What the node offers pods: cores, GiB of memory, GPUs.
	Cores    float64 `json:"cores"`
	MemoryGB float64 `json:"memory_gb"`
	GPUs     int     `json:"gpus"`
}

// Found is what Check found about the cluster.
type Found struct {
	Version string
	Nodes   []Node
	// NodesError says why the nodes could not be read (listing nodes is a
	// cluster-wide permission Paddock does not need), "" when they were.
	NodesError string
	// CanWatchNodes says whether the credentials may list and watch nodes.
	CanWatchNodes bool
}

// Check does what attaching asks of a cluster: the API answers, the
// credentials are accepted, the namespace exists and the credentials may
// do everything in Needed there; then it reads the nodes. priorityClass,
// when set, must exist. The error names the first thing that is wrong.
func Check(ctx context.Context, conn *Connection, priorityClass string) (Found, error) {
	var f Found
	cs, err := conn.Clientset()
	if err != nil {
		return f, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		return f, Explain(conn, err)
	}
	f.Version = v.GitVersion
	nsKnown := false
	switch _, err := cs.CoreV1().Namespaces().Get(ctx, conn.Namespace, metav1.GetOptions{}); {
	case err == nil:
		nsKnown = true
	case apierrors.IsNotFound(err):
		return f, noNamespace(conn)
	case !apierrors.IsForbidden(err):
		return f, Explain(conn, err)
	}
	if !nsKnown {
		// A role limited to the namespace may not read the namespace object;
		// a dry-run create tells whether it exists (when the credentials may
		// not create Jobs there either, the checks below say so).
		switch err := dryRunJob(ctx, cs, conn.Namespace); {
		case apierrors.IsNotFound(err):
			return f, noNamespace(conn)
		case err != nil && !apierrors.IsForbidden(err):
			return f, Explain(conn, err)
		}
	}
	for _, a := range Needed {
		ok, why, err := Allowed(ctx, cs, conn.Namespace, a)
		if err != nil {
			return f, Explain(conn, err)
		}
		if !ok {
			if !nsKnown {
				why = strings.TrimSpace(why + "; or the namespace does not exist: the credentials may not read namespaces to tell")
			}
			return f, forbidden(conn, a, strings.TrimPrefix(why, "; "))
		}
	}
	if priorityClass != "" {
		if _, err := cs.SchedulingV1().PriorityClasses().Get(ctx, priorityClass, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return f, api.Invalid("lowpriority_priority_class", "the cluster has no PriorityClass %q (kubectl get priorityclasses)", priorityClass)
		} else if err != nil && !apierrors.IsForbidden(err) {
			return f, Explain(conn, err)
		}
	}
	list, _, lerr := Allowed(ctx, cs, "", Access{"list", "", "nodes"})
	watch, _, werr := Allowed(ctx, cs, "", Access{"watch", "", "nodes"})
	f.CanWatchNodes = list && watch && lerr == nil && werr == nil
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsForbidden(err):
		f.NodesError = "the credentials may not list nodes (a cluster-wide permission Paddock does not need); nodes are not shown"
	case err != nil:
		return f, Explain(conn, err)
	default:
		f.Nodes = Nodes(nodes.Items)
	}
	return f, nil
}

// Allowed asks the API whether the credentials may do a in namespace ns
// (a SelfSubjectAccessReview), and why not.
func Allowed(ctx context.Context, cs kubernetes.Interface, ns string, a Access) (bool, string, error) {
	r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
		Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
			Namespace: ns, Verb: a.Verb, Group: a.Group, Resource: a.Resource}},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, "", err
	}
	return r.Status.Allowed, r.Status.Reason, nil
}

// dryRunJob asks the API to accept (and not keep) a minimal Job in ns.
func dryRunJob(ctx context.Context, cs kubernetes.Interface, ns string) error {
	zero := int32(0)
	_, err := cs.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "paddock-attach-check-"},
		Spec: batchv1.JobSpec{BackoffLimit: &zero, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "check", Image: "paddock-attach-check", Command: []string{"true"}}},
		}}},
	}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return err
}

func noNamespace(conn *Connection) error {
	return api.Invalid("namespace", "the cluster at %s has no namespace %q (kubectl create namespace %s)", conn.Server, conn.Namespace, conn.Namespace)
}

func forbidden(conn *Connection, a Access, why string) error {
	msg := fmt.Sprintf("the kubeconfig's credentials may not %s %s in namespace %s", a.Verb, a, conn.Namespace)
	if why != "" {
		msg += " (" + why + ")"
	}
	return api.Invalid("kubeconfig", "%s; give them the Role in docs/kubernetes.md", msg)
}

// Explain turns an error from the API into one for the user, naming the
// cause: unreachable, TLS, unauthorized, forbidden; other API errors keep
// the API's own message.
func Explain(conn *Connection, err error) error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return err
	}
	var status apierrors.APIStatus
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case apierrors.IsUnauthorized(err):
		return api.Invalid("kubeconfig", "the API server at %s refused the kubeconfig's credentials (401 Unauthorized): the token or certificate is wrong or expired", conn.Server)
	case apierrors.IsForbidden(err):
		return api.Invalid("kubeconfig", "the kubeconfig's credentials are forbidden to do what Paddock needs: %s", firstLine(err))
	case errors.As(err, &unknownCA), errors.As(err, &hostErr):
		return api.Unavailable("the API server at %s did not prove who it is: %s (check certificate-authority-data)", conn.Server, firstLine(err))
	case errors.As(err, &status):
		return api.Unavailable("the Kubernetes API at %s answered: %s", conn.Server, firstLine(err))
	case errors.As(err, &netErr), errors.As(err, &urlErr):
		return api.Unavailable("the Kubernetes API at %s is unreachable: %s", conn.Server, firstLine(unwrapURL(err)))
	}
	return api.Unavailable("the Kubernetes API at %s: %s", conn.Server, firstLine(err))
}

func unwrapURL(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) && urlErr.Err != nil {
		return urlErr.Err
	}
	return err
}

// Nodes summarises nodes: what each offers pods, sorted by name.
func Nodes(items []corev1.Node) []Node {
	out := make([]Node, 0, len(items))
	for _, n := range items {
		out = append(out, NodeOf(&n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NodeOf is what one node offers pods (its allocatable resources) and
// whether it is Ready.
func NodeOf(n *corev1.Node) Node {
	a := n.Status.Allocatable
	out := Node{Name: n.Name, Cores: quantity(a, corev1.ResourceCPU), MemoryGB: float64(int(quantity(a, corev1.ResourceMemory)/(1<<30)*10)) / 10}
	if g, ok := a[GPUResource]; ok {
		out.GPUs = int(g.Value())
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Ready = c.Status == corev1.ConditionTrue
		}
	}
	return out
}

func quantity(l corev1.ResourceList, name corev1.ResourceName) float64 {
	q, ok := l[name]
	if !ok {
		return 0
	}
	return q.AsApproximateFloat64()
}

// Cores is a quantity of CPU as Kubernetes writes it ("4", "500m").
func Cores(cores float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(cores*1000+0.5), resource.DecimalSI)
}

// Memory is a quantity of memory in GiB as Kubernetes writes it, to the MiB.
func Memory(gb float64) resource.Quantity {
	return *resource.NewQuantity(int64(gb*1024+0.5)*(1<<20), resource.BinarySI)
}

func contextNames(cfg *clientcmdapi.Config) string {
	var names []string
	for n := range cfg.Contexts {
		names = append(names, n)
	}
	if len(names) == 0 {
		return "no contexts"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// firstLine is the first line of an error's message, without anything
// that looks like the kubeconfig's content.
func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
