package kubernetes

import (
	"runtime"
	"strconv"
	"strings"

	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/kube"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations on what Paddock makes. The labels select (the
// server watches only its own objects of each target); the annotations
// carry what the server reads back.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "paddock"
	// LabelTarget names the attached kubernetes target (workspace and
	// name) the object was made through.
	LabelTarget = "paddock.dev/target"
	// LabelGroup is the name of the pod or Job of a node group (its
	// Secret and Service have the same name).
	LabelGroup = "paddock.dev/group"
	// LabelRun is the run a Job is for.
	LabelRun = "paddock.dev/run"
	// AnnotNodes lists the group's node ids, by index.
	AnnotNodes = "paddock.dev/nodes"
	// AnnotTargetKey is the store key of the nodes' own target (the
	// kubernetes target, or a cluster taking nodes from it).
	AnnotTargetKey = "paddock.dev/target-key"
	// AnnotCompletionIndex is where Kubernetes writes an Indexed Job
	// pod's index.
	AnnotCompletionIndex = "batch.kubernetes.io/job-completion-index"
)

// Where the pod's volumes are mounted, and the agent's files in them.
const (
	// SecretDir holds the group's Secret: server-url and token-<index>.
	SecretDir = "/var/run/paddock"
	// AgentDir is the emptyDir the init container fetches the agent into.
	AgentDir = "/opt/paddock/bin"
	// WorkDir is the agent's work dir (an emptyDir): sources, outputs.
	WorkDir = "/paddock/work"
	// IndexEnv is the environment variable holding the pod's index in
	// its group (0 for a cluster node's pod).
	IndexEnv = "PADDOCK_NODE_INDEX"
	// InitContainer and RunContainer name the pod's containers.
	InitContainer = "paddock-agent"
	RunContainer  = "run"
)

// fetchAgent is the init container's program: it fetches this server's
// paddock binary with the node's token (GET /api/v1/agent/binary) into
// the agent's volume, trusting only the server's CA when the Secret holds
// one (ca.pem: the server runs HTTPS with its own CA). It needs only
// python3, which the pod image has.
const fetchAgent = `import os, shutil, ssl, sys, urllib.request
d, out = os.environ["PADDOCK_SECRET_DIR"], os.environ["PADDOCK_AGENT_DIR"] + "/paddock"
token = open(d + "/token-" + os.environ["` + IndexEnv + `"]).read().strip()
url = open(d + "/server-url").read().strip() + "/api/v1/agent/binary"
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
ctx = ssl.create_default_context(cafile=d + "/ca.pem") if os.path.exists(d + "/ca.pem") else None
try:
    with urllib.request.urlopen(req, timeout=300, context=ctx) as r, open(out + ".tmp", "wb") as f:
        shutil.copyfileobj(r, f)
except Exception as e:
    sys.exit("cannot fetch the Paddock agent from %s: %s (the pod must reach the server: see server_url)" % (url, e))
os.chmod(out + ".tmp", 0o755)
os.rename(out + ".tmp", out)
print("fetched the Paddock agent from", url)
`

// PodConfig is the kubernetes provider's settings of a node, from the
// target's properties and what the node is for (NodeConfig); it travels
// raw in NodeSpec.Config.
type PodConfig struct {
	Image        string            `json:"image"`
	InstanceType string            `json:"instance_type,omitempty"`
	NodeSelector map[string]string `json:"node_selector,omitempty"`
	// The pod's requests and limits; GPUs are nvidia.com/gpu.
	Cores    float64 `json:"cores"`
	MemoryGB float64 `json:"memory_gb,omitempty"`
	GPUs     int     `json:"gpus,omitempty"`
	// ActiveDeadlineSeconds bounds the pod's life once it has started
	// (0: no bound).
	ActiveDeadlineSeconds int64                `json:"active_deadline_seconds,omitempty"`
	PriorityClass         string               `json:"priority_class,omitempty"`
	Tolerations           []compute.Toleration `json:"tolerations,omitempty"`
	// ServerURL is where the pod reaches the server ("" for the server's
	// own URL).
	ServerURL string `json:"server_url,omitempty"`
	OneRun    bool   `json:"one_run,omitempty"`
	RunID     string `json:"run_id,omitempty"`
}

// objectMeta is what every object of a group carries.
func objectMeta(name, ns, target string, labels map[string]string) metav1.ObjectMeta {
	l := map[string]string{LabelManagedBy: ManagedBy, LabelTarget: target, LabelGroup: name}
	for k, v := range labels {
		l[k] = v
	}
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: l}
}

// podTemplate is the pod of one node of a group: an init container that
// fetches the agent, and the agent in the run's image. indexed says
// whether the pod is one of an Indexed Job's (its index comes from
// Kubernetes) or a cluster node's own pod (index 0).
func podTemplate(name, targetKey string, nodeIDs []string, cfg PodConfig, indexed bool, meta metav1.ObjectMeta) corev1.PodTemplateSpec {
	indexEnv := corev1.EnvVar{Name: IndexEnv, Value: "0"}
	if indexed {
		indexEnv.ValueFrom = &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + AnnotCompletionIndex + "']"}}
		indexEnv.Value = ""
	}
	mounts := []corev1.VolumeMount{
		{Name: "paddock-secret", MountPath: SecretDir, ReadOnly: true},
		{Name: "paddock-agent", MountPath: AgentDir},
	}
	args := []string{"agent",
		"--server-file", SecretDir + "/server-url",
		"--ca-file", SecretDir + "/ca.pem", // absent: the system's roots
		"--token-file", SecretDir + "/token-$(" + IndexEnv + ")",
		"--work-dir", WorkDir,
		"--cores", strconv.FormatFloat(cfg.Cores, 'f', -1, 64),
		"--image", cfg.Image,
		"--hide", SecretDir, "--hide", AgentDir,
	}
	if cfg.MemoryGB > 0 {
		args = append(args, "--memory-gb", strconv.FormatFloat(cfg.MemoryGB, 'f', -1, 64))
	}
	if cfg.OneRun {
		args = append(args, "--one-run")
	}
	if indexed && len(nodeIDs) > 1 {
		// Other nodes of the run reach this one through the group's
		// headless Service: <job>-<index>.<service>.<namespace>.svc.
		args = append(args, "--address", name+"-$("+IndexEnv+")."+name+"."+meta.Namespace+".svc")
	}
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	if cfg.Cores > 0 {
		res.Requests[corev1.ResourceCPU] = kube.Cores(cfg.Cores)
		res.Limits[corev1.ResourceCPU] = kube.Cores(cfg.Cores)
	}
	if cfg.MemoryGB > 0 {
		res.Requests[corev1.ResourceMemory] = kube.Memory(cfg.MemoryGB)
		res.Limits[corev1.ResourceMemory] = kube.Memory(cfg.MemoryGB)
	}
	if cfg.GPUs > 0 {
		q := *kubeQuantity(cfg.GPUs)
		res.Requests[kube.GPUResource] = q
		res.Limits[kube.GPUResource] = q
	}
	selector := map[string]string{"kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH}
	for k, v := range cfg.NodeSelector {
		selector[k] = v
	}
	no := false
	spec := corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		// Runs get no Kubernetes credentials: their run token is the
		// only credential they hold.
		AutomountServiceAccountToken: &no,
		EnableServiceLinks:           &no,
		NodeSelector:                 selector,
		PriorityClassName:            cfg.PriorityClass,
		Volumes: []corev1.Volume{
			{Name: "paddock-secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name, DefaultMode: ptr(int32(0o400))}}},
			{Name: "paddock-agent", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "paddock-work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
		InitContainers: []corev1.Container{{
			Name: InitContainer, Image: cfg.Image,
			Command: []string{"python3", "-c", fetchAgent},
			Env: []corev1.EnvVar{indexEnv, {Name: "PADDOCK_SECRET_DIR", Value: SecretDir}, {Name: "PADDOCK_AGENT_DIR", Value: AgentDir},
				{Name: "PYTHONDONTWRITEBYTECODE", Value: "1"}},
			VolumeMounts:             mounts,
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		}},
		Containers: []corev1.Container{{
			Name: RunContainer, Image: cfg.Image,
			Command:                  []string{AgentDir + "/paddock"},
			Args:                     args,
			Env:                      []corev1.EnvVar{indexEnv},
			Resources:                res,
			VolumeMounts:             append(mounts, corev1.VolumeMount{Name: "paddock-work", MountPath: WorkDir}),
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		}},
	}
	if indexed && len(nodeIDs) > 1 {
		spec.Subdomain = name
	}
	if cfg.ActiveDeadlineSeconds > 0 {
		spec.ActiveDeadlineSeconds = ptr(cfg.ActiveDeadlineSeconds)
	}
	for _, t := range cfg.Tolerations {
		tol := corev1.Toleration{Key: t.Key, Value: t.Value, Effect: corev1.TaintEffect(t.Effect), Operator: corev1.TolerationOpEqual}
		if t.Exists {
			tol.Operator, tol.Value = corev1.TolerationOpExists, ""
		}
		spec.Tolerations = append(spec.Tolerations, tol)
	}
	meta.Annotations = map[string]string{AnnotNodes: strings.Join(nodeIDs, ","), AnnotTargetKey: targetKey}
	if cfg.InstanceType != "" {
		meta.Annotations["paddock.dev/instance-type"] = cfg.InstanceType
	}
	meta.Name, meta.Namespace = "", ""
	return corev1.PodTemplateSpec{ObjectMeta: meta, Spec: spec}
}

// NodePod is the pod of one cluster node: the agent that stays for many
// runs, named after the node.
func NodePod(name, ns, target, targetKey string, cfg PodConfig) *corev1.Pod {
	meta := objectMeta(name, ns, target, nil)
	tmpl := podTemplate(name, targetKey, []string{name}, cfg, false, meta)
	tmpl.ObjectMeta.Name, tmpl.ObjectMeta.Namespace = name, ns
	return &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
}

// RunJob is the Job of one run's nodes: an Indexed Job with a pod per
// node, each running an agent for that run only (--one-run). Kubernetes
// never retries a pod (backoffLimit 0): the server decides what happens
// to the run when one fails, and makes a new Job for a new attempt.
func RunJob(name, ns, target, targetKey string, nodeIDs []string, cfg PodConfig) *batchv1.Job {
	n := int32(len(nodeIDs))
	labels := map[string]string{}
	if cfg.RunID != "" {
		labels[LabelRun] = cfg.RunID
	}
	meta := objectMeta(name, ns, target, labels)
	tmpl := podTemplate(name, targetKey, nodeIDs, cfg, true, meta)
	mode := batchv1.IndexedCompletion
	job := &batchv1.Job{
		ObjectMeta: meta,
		Spec: batchv1.JobSpec{
			CompletionMode: &mode,
			Completions:    &n,
			Parallelism:    &n,
			BackoffLimit:   ptr(int32(0)),
			// A safety net: a finished Job the server did not delete (it
			// was down) goes away by itself.
			TTLSecondsAfterFinished: ptr(int32(3600)),
			Template:                tmpl,
		},
	}
	job.Annotations = map[string]string{AnnotNodes: strings.Join(nodeIDs, ","), AnnotTargetKey: targetKey}
	return job
}

// GroupSecret holds what the pods of a group read: the server's URL,
// the CA the agents pin when the server runs HTTPS with its own (ca.pem;
// nil: none) and each node's token (token-<index>).
func GroupSecret(name, ns, target, serverURL string, ca []byte, tokens []string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: objectMeta(name, ns, target, nil), Type: corev1.SecretTypeOpaque,
		StringData: map[string]string{"server-url": serverURL}}
	if len(ca) > 0 {
		s.StringData["ca.pem"] = string(ca)
	}
	for i, t := range tokens {
		s.StringData["token-"+strconv.Itoa(i)] = t
	}
	return s
}

// GroupService is the headless Service of a multi-node run: it gives each
// pod a DNS name (<job>-<index>.<service>) from the moment it exists.
func GroupService(name, ns, target string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: objectMeta(name, ns, target, nil),
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 map[string]string{LabelGroup: name, LabelManagedBy: ManagedBy},
			PublishNotReadyAddresses: true,
		},
	}
}

func ptr[T any](v T) *T { return &v }
