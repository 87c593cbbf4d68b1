package compute

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/kube"
	"github.com/paddock-ml/paddock/internal/secret"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// KubernetesProperties are the properties of a kubernetes target (Azure
// ML's Kubernetes compute): a namespace of an existing cluster, reached
// with a kubeconfig (a secret). Runs become batch/v1 Jobs whose pods run
// the Paddock agent for that run; clusters with provider kubernetes get
// their nodes as agent pods.
type KubernetesProperties struct {
	Common
	// Context is the kubeconfig's context to use (default: its current
	// context).
	Context string `json:"context,omitempty"`
	// Namespace is where Paddock makes its Jobs and Pods (default: the
	// context's namespace, else "default"); recorded at attach.
	Namespace string `json:"namespace,omitempty"`
	// InstanceTypes are named pod sizes: a run gets the smallest one that
	// fits what it asks for, and its node selector.
	InstanceTypes map[string]InstanceType `json:"instance_types,omitempty"`
	// Image is the pod image of runs that name none (--image); it must
	// hold python3, which fetches the agent.
	Image string `json:"image,omitempty"`
	// ServerURL is where pods reach this server (default: the server's
	// own URL, which pods often cannot reach: a loopback address).
	ServerURL string `json:"server_url,omitempty"`
	// Low-priority (preemptible) cluster nodes' pods get this PriorityClass
	// and these tolerations ("key[=value][:Effect]").
	LowPriorityPriorityClass string   `json:"lowpriority_priority_class,omitempty"`
	LowPriorityTolerations   []string `json:"lowpriority_tolerations,omitempty"`
	// Server is the API server's URL, recorded at attach (not a secret;
	// shown so users see which cluster this is).
	Server string `json:"server,omitempty"`
}

// InstanceType is a named size of pod on a kubernetes target (Azure ML's
// instance types): its requests and limits, and where it may run.
type InstanceType struct {
	// CPU and Memory are Kubernetes quantities ("4", "500m"; "16Gi").
	CPU    string `json:"cpu"`
	Memory string `json:"memory,omitempty"`
	GPU    int    `json:"gpu,omitempty"`
	// NodeSelector limits the type's pods to nodes with these labels.
	NodeSelector map[string]string `json:"node_selector,omitempty"`
}

// Cores is the instance type's CPU in cores.
func (t InstanceType) Cores() float64 {
	q, err := resource.ParseQuantity(t.CPU)
	if err != nil {
		return 0
	}
	return q.AsApproximateFloat64()
}

// MemoryGB is the instance type's memory in GiB (0 when not given).
func (t InstanceType) MemoryGB() float64 {
	if t.Memory == "" {
		return 0
	}
	q, err := resource.ParseQuantity(t.Memory)
	if err != nil {
		return 0
	}
	return q.AsApproximateFloat64() / (1 << 30)
}

// KubernetesStatus is what attach found, kept up to date while the
// server watches the cluster: the nodes and what they offer pods.
type KubernetesStatus struct {
	Reachable bool   `json:"reachable"`
	Version   string `json:"version,omitempty"`
	// Totals of the nodes' allocatable resources.
	NodeCount int     `json:"node_count"`
	Cores     float64 `json:"cores"`
	MemoryGB  float64 `json:"memory_gb"`
	GPUs      int     `json:"gpus"`
	// Nodes are the cluster's nodes and what each offers pods.
	Nodes []kube.Node `json:"nodes"`
	// NodesError says why the nodes are not shown (the credentials may not
	// list them).
	NodesError string `json:"nodes_error,omitempty"`
	// CanWatchNodes says whether the credentials may list and watch nodes
	// (the server then keeps Nodes current).
	CanWatchNodes bool `json:"can_watch_nodes,omitempty"`
	// Error is the last problem reaching the cluster, empty while all is
	// well.
	Error string `json:"error,omitempty"`
}

// WithNodes sets the status's nodes and their totals.
func (s KubernetesStatus) WithNodes(nodes []kube.Node) KubernetesStatus {
	s.Nodes, s.NodeCount, s.Cores, s.MemoryGB, s.GPUs = nodes, len(nodes), 0, 0, 0
	if s.Nodes == nil {
		s.Nodes = []kube.Node{}
	}
	for _, n := range nodes {
		s.Cores += n.Cores
		s.MemoryGB += n.MemoryGB
		s.GPUs += n.GPUs
	}
	s.MemoryGB = math.Round(s.MemoryGB*10) / 10
	return s
}

// DefaultKubernetesImage is the pod image of runs that name none: it has
// python3, which the pod's init container uses to fetch the agent.
const DefaultKubernetesImage = "python:3.12-slim"

// MaxKubernetesNodes bounds a run's node_count on a kubernetes target
// (the pods of one Indexed Job).
const MaxKubernetesNodes = 256

type kubernetes struct{ attached }

func init() { Register(kubernetes{}) }

func (kubernetes) Type() string              { return "kubernetes" }
func (kubernetes) Origin() Origin            { return Attached }
func (kubernetes) SecretFields() []string    { return []string{"kubeconfig"} }
func (kubernetes) UpdatableFields() []string { return []string{"description", "tags"} }

var (
	// dnsLabel is a namespace name (RFC 1123 label).
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// instanceTypeName is the name of an instance type.
	instanceTypeName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,62}$`)
	// imageRef is a container image reference (registry/name:tag@digest).
	imageRef = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$`)
	// toleration is key[=value][:Effect].
	toleration = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_./]*)(=([-A-Za-z0-9_.]*))?(:(NoSchedule|PreferNoSchedule|NoExecute))?$`)
)

const maxInstanceTypes = 50

func (kubernetes) Normalize(_ context.Context, raw json.RawMessage, secrets map[string]secret.Value, _ Env) (json.RawMessage, error) {
	var p KubernetesProperties
	if err := decodeStrict(raw, &p); err != nil {
		return nil, err
	}
	if err := p.Common.validate(); err != nil {
		return nil, err
	}
	if !secrets["kubeconfig"].IsSet() {
		return nil, api.Invalid("kubeconfig", "kubeconfig is required: the content of a kubeconfig file (--kubeconfig FILE)")
	}
	if p.Namespace != "" && (len(p.Namespace) > 63 || !dnsLabel.MatchString(p.Namespace)) {
		return nil, api.Invalid("namespace", "namespace %q must be 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit", p.Namespace)
	}
	if len(p.Context) > 253 || strings.ContainsAny(p.Context, "\n\r") {
		return nil, api.Invalid("context", "context must be the name of a context of the kubeconfig")
	}
	if p.Image == "" {
		p.Image = DefaultKubernetesImage
	} else if !imageRef.MatchString(p.Image) {
		return nil, api.Invalid("image", "image %q must be a container image reference (registry/name:tag)", p.Image)
	}
	if p.ServerURL != "" {
		u, err := url.Parse(p.ServerURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(p.ServerURL, " \n") {
			return nil, api.Invalid("server_url", "server_url %q must be an http:// or https:// URL pods reach this server at", p.ServerURL)
		}
		p.ServerURL = strings.TrimRight(p.ServerURL, "/")
	}
	if len(p.InstanceTypes) > maxInstanceTypes {
		return nil, api.Invalid("instance_types", "at most %d instance types are allowed", maxInstanceTypes)
	}
	for name, t := range p.InstanceTypes {
		if err := checkInstanceType(name, &t); err != nil {
			return nil, err
		}
		p.InstanceTypes[name] = t
	}
	if p.LowPriorityPriorityClass != "" && (len(p.LowPriorityPriorityClass) > 253 || len(validation.IsDNS1123Subdomain(p.LowPriorityPriorityClass)) > 0) {
		return nil, api.Invalid("lowpriority_priority_class", "lowpriority_priority_class %q must be the name of a PriorityClass", p.LowPriorityPriorityClass)
	}
	for _, t := range p.LowPriorityTolerations {
		if _, err := ParseToleration(t); err != nil {
			return nil, err
		}
	}
	return mustJSON(p), nil
}

// checkInstanceType validates one instance type and writes its quantities
// canonically.
func checkInstanceType(name string, t *InstanceType) error {
	field := "instance_types." + name
	if !instanceTypeName.MatchString(name) {
		return api.Invalid("instance_types", "instance type name %q must be 1 to 63 letters, digits, '_', '.' or '-', starting with a letter", name)
	}
	q, err := resource.ParseQuantity(t.CPU)
	if err != nil || q.Sign() <= 0 || q.AsApproximateFloat64() > 1024 {
		return api.Invalid(field+".cpu", "the cpu of instance type %s must be a Kubernetes quantity of cores above 0 and at most 1024, e.g. 4 or 500m, not %q", name, t.CPU)
	}
	t.CPU = q.String()
	if t.Memory != "" {
		q, err := resource.ParseQuantity(t.Memory)
		if err != nil || q.Sign() <= 0 || q.AsApproximateFloat64() > float64(int64(64)<<40) {
			return api.Invalid(field+".memory", "the memory of instance type %s must be a Kubernetes quantity of bytes, e.g. 16Gi, not %q", name, t.Memory)
		}
		t.Memory = q.String()
	}
	if t.GPU < 0 || t.GPU > 64 {
		return api.Invalid(field+".gpu", "the gpu of instance type %s must be 0 to 64, not %d", name, t.GPU)
	}
	for k, v := range t.NodeSelector {
		if len(validation.IsQualifiedName(k)) > 0 || len(validation.IsValidLabelValue(v)) > 0 {
			return api.Invalid(field+".node_selector", "node selector %s=%s of instance type %s is not a valid Kubernetes label", k, v, name)
		}
	}
	return nil
}

// Toleration is a parsed lowpriority_tolerations entry.
type Toleration struct {
	Key, Value, Effect string
	// Exists is true when no value was given: any value is tolerated.
	Exists bool
}

// ParseToleration reads "key[=value][:Effect]".
func ParseToleration(s string) (Toleration, error) {
	m := toleration.FindStringSubmatch(s)
	if m == nil {
		return Toleration{}, api.Invalid("lowpriority_tolerations", "toleration %q must be key[=value][:Effect] with Effect NoSchedule, PreferNoSchedule or NoExecute", s)
	}
	return Toleration{Key: m[1], Value: m[3], Exists: m[2] == "", Effect: m[5]}, nil
}

func (kubernetes) InitialStatus(json.RawMessage) json.RawMessage {
	return mustJSON(KubernetesStatus{}.WithNodes(nil))
}

// KubernetesConnection opens the connection of a kubernetes target from
// its properties and its kubeconfig.
func KubernetesConnection(props json.RawMessage, secrets map[string]secret.Value) (*kube.Connection, KubernetesProperties, error) {
	var p KubernetesProperties
	if err := json.Unmarshal(props, &p); err != nil {
		return nil, p, err
	}
	conn, err := kube.Connect([]byte(secrets["kubeconfig"].Reveal()), p.Context, p.Namespace)
	return conn, p, err
}

// Attach checks the cluster (kube.Check: reachable, credentials accepted,
// namespace present, every permission Paddock needs granted) and reads its
// nodes; it records the namespace used and the API server's URL.
func (kubernetes) Attach(ctx context.Context, props json.RawMessage, secrets map[string]secret.Value) (json.RawMessage, json.RawMessage, error) {
	var given KubernetesProperties
	if err := json.Unmarshal(props, &given); err != nil {
		return nil, nil, err
	}
	if given.Server != "" {
		return nil, nil, api.Invalid("server", "server is recorded by the server from the kubeconfig; do not give it")
	}
	conn, p, err := KubernetesConnection(props, secrets)
	if err != nil {
		return nil, nil, err
	}
	found, err := kube.Check(ctx, conn, p.LowPriorityPriorityClass)
	if err != nil {
		return nil, nil, err
	}
	p.Namespace, p.Server = conn.Namespace, conn.Server
	st := KubernetesStatus{Reachable: true, Version: found.Version, NodesError: found.NodesError, CanWatchNodes: found.CanWatchNodes}.WithNodes(found.Nodes)
	return mustJSON(p), mustJSON(st), nil
}

var (
	_ Attacher    = kubernetes{}
	_ Provisioner = kubernetes{}
	_ NodeKind    = kubernetes{}
	_ RunTarget   = kubernetes{}
)

// Provider implements NodeKind: a run's nodes are the pods of its Job.
func (kubernetes) Provider(json.RawMessage) string { return "kubernetes" }

// RunRules implements RunTarget: a run may span up to MaxKubernetesNodes
// pods; with instance types, it must fit the largest of them.
func (kubernetes) RunRules(props json.RawMessage, _ *Catalog) (RunRules, error) {
	var p KubernetesProperties
	if err := json.Unmarshal(props, &p); err != nil {
		return RunRules{}, err
	}
	r := RunRules{DefaultCores: 1, MaxNodes: MaxKubernetesNodes}
	if len(p.InstanceTypes) > 0 {
		largest := api.Size{Name: "the largest instance type of this target"}
		for _, t := range p.InstanceTypes {
			largest.Cores = max(largest.Cores, int(t.Cores()))
			largest.GPUs = max(largest.GPUs, t.GPU)
			if t.Memory == "" {
				largest.MemoryGB = math.Inf(1)
			} else {
				largest.MemoryGB = max(largest.MemoryGB, t.MemoryGB())
			}
		}
		r.NodeSize = &largest
	}
	return r, nil
}

// PickInstanceType returns the smallest instance type (fewest GPUs, then
// cores, then memory; then name) that fits a run's request, or an error
// naming what the types offer.
func PickInstanceType(types map[string]InstanceType, cores, memoryGB float64, gpus int) (string, InstanceType, error) {
	names := make([]string, 0, len(types))
	for n := range types {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := types[names[i]], types[names[j]]
		switch {
		case a.GPU != b.GPU:
			return a.GPU < b.GPU
		case a.Cores() != b.Cores():
			return a.Cores() < b.Cores()
		case a.MemoryGB() != b.MemoryGB():
			return a.MemoryGB() < b.MemoryGB()
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		t := types[n]
		if gpus <= t.GPU && cores <= t.Cores()+1e-9 && (t.Memory == "" || memoryGB <= t.MemoryGB()+1e-9) {
			return n, t, nil
		}
	}
	var offered []string
	for _, n := range names {
		t := types[n]
		offered = append(offered, fmt.Sprintf("%s (cpu %s, memory %s, gpu %d)", n, t.CPU, orNone(t.Memory), t.GPU))
	}
	return "", InstanceType{}, api.Invalid("resources", "no instance type fits %g cores, %g GiB and %d GPUs; the target offers %s", cores, memoryGB, gpus, strings.Join(offered, ", "))
}

func orNone(s string) string {
	if s == "" {
		return "unlimited"
	}
	return s
}
