package kubernetes

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(status string) *corev1.Pod {
	p := &corev1.Pod{}
	if err := json.Unmarshal([]byte(`{"status":`+status+`}`), p); err != nil {
		panic(err)
	}
	return p
}

// What each pod state means for the node, with the words the run shows.
func TestPodState(t *testing.T) {
	t.Parallel()
	deleted := pod(`{"phase":"Running"}`)
	deleted.DeletionTimestamp = &metav1.Time{}
	drained := pod(`{"phase":"Running","conditions":[{"type":"DisruptionTarget","status":"True","reason":"EvictionByEvictionAPI","message":"Eviction API: evicting"}]}`)
	drained.DeletionTimestamp = &metav1.Time{}
	scheduled := pod(`{"phase":"Pending"}`)
	scheduled.Spec.NodeName = "node-1"
	tests := []struct {
		desc        string
		pod         *corev1.Pod
		state, want string
	}{
		{"unschedulable", pod(`{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}`),
			StatePending, "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."},
		{"image pull", pod(`{"phase":"Pending","initContainerStatuses":[{"name":"paddock-agent","state":{"waiting":{"reason":"ErrImagePull","message":"not found"}}}]}`),
			StatePending, "ErrImagePull: not found"},
		{"back-off", pod(`{"phase":"Pending","containerStatuses":[{"name":"run","state":{"waiting":{"reason":"ImagePullBackOff","message":"Back-off pulling image"}}}]}`),
			StatePending, "ImagePullBackOff: Back-off pulling image"},
		{"fetching the agent", pod(`{"phase":"Pending","initContainerStatuses":[{"name":"paddock-agent","state":{"running":{}}}]}`),
			StatePending, "fetching the Paddock agent"},
		{"scheduled", scheduled, StatePending, "scheduled on node node-1"},
		{"running", pod(`{"phase":"Running"}`), StateRunning, ""},
		{"succeeded", pod(`{"phase":"Succeeded"}`), StateCompleted, ""},
		{"agent failed", pod(`{"phase":"Failed","containerStatuses":[{"name":"run","state":{"terminated":{"exitCode":2,"reason":"Error","message":"line 1\nagent: cannot reach the server\n"}}}]}`),
			StateFailed, "container run exited with code 2: agent: cannot reach the server"},
		{"out of memory", pod(`{"phase":"Failed","containerStatuses":[{"name":"run","state":{"terminated":{"exitCode":137,"reason":"OOMKilled"}}}]}`),
			StateFailed, "exited with code 137 (OOMKilled)"},
		{"no python in the image", pod(`{"phase":"Failed","initContainerStatuses":[{"name":"paddock-agent","state":{"terminated":{"exitCode":127,"reason":"Error","message":"exec: python3: not found"}}}]}`),
			StateFailed, "init container paddock-agent (which fetches the agent) exited with code 127: exec: python3: not found"},
		{"evicted by the kubelet", pod(`{"phase":"Failed","reason":"Evicted","message":"The node was low on resource: memory."}`),
			StatePreempted, "its pod was evicted: The node was low on resource: memory."},
		{"disruption condition", pod(`{"phase":"Failed","conditions":[{"type":"DisruptionTarget","status":"True","reason":"PreemptionByScheduler","message":"preempted by default/important"}]}`),
			StatePreempted, "preempted by the scheduler for a higher-priority pod: preempted by default/important"},
		{"node lost", pod(`{"phase":"Failed","reason":"NodeLost"}`), StatePreempted, "lost with its node"},
		{"deadline", pod(`{"phase":"Failed","reason":"DeadlineExceeded","message":"Pod was active on the node longer than the specified deadline"}`),
			StateTimeout, "active deadline"},
		{"deleted by someone", deleted, StatePreempted, "its pod was deleted"},
		{"drained", drained, StatePreempted, "evicted (the Eviction API"},
	}
	for _, tc := range tests {
		state, why := PodState(tc.pod)
		if state != tc.state || !strings.Contains(why, tc.want) || tc.want == "" && why != "" {
			t.Errorf("%s: %s %q, want %s %q", tc.desc, state, why, tc.state, tc.want)
		}
	}
}

// The pod contract: an init container fetches the agent, the container
// runs it for the run's node with the run's resources, and the run gets
// no Kubernetes credentials.
func TestRunJob(t *testing.T) {
	t.Parallel()
	cfg := PodConfig{Image: "python:3.12-slim", Cores: 2, MemoryGB: 8, GPUs: 1, ActiveDeadlineSeconds: 900, OneRun: true, RunID: "run-abc",
		PriorityClass: "low", Tolerations: []compute.Toleration{{Key: "spot", Exists: true, Effect: "NoSchedule"}}, NodeSelector: map[string]string{"gpu": "a100"}}
	j := RunJob("k8s-abc", "ml", "default.k8s", "default/k8s", []string{"k8s-abc", "k8s-abc-1"}, cfg)
	if *j.Spec.Completions != 2 || *j.Spec.Parallelism != 2 || *j.Spec.BackoffLimit != 0 || *j.Spec.CompletionMode != "Indexed" {
		t.Errorf("job spec: %+v", j.Spec)
	}
	if j.Labels[LabelRun] != "run-abc" || j.Labels[LabelTarget] != "default.k8s" || j.Annotations[AnnotNodes] != "k8s-abc,k8s-abc-1" {
		t.Errorf("labels %v annotations %v", j.Labels, j.Annotations)
	}
	ps := j.Spec.Template.Spec
	if ps.RestartPolicy != corev1.RestartPolicyNever || *ps.AutomountServiceAccountToken || ps.Subdomain != "k8s-abc" ||
		*ps.ActiveDeadlineSeconds != 900 || ps.PriorityClassName != "low" || len(ps.Tolerations) != 1 || ps.NodeSelector["gpu"] != "a100" {
		t.Errorf("pod spec: %+v", ps)
	}
	c := ps.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"agent", "--one-run", "--token-file /var/run/paddock/token-$(PADDOCK_NODE_INDEX)", "--cores 2", "--memory-gb 8",
		"--image python:3.12-slim", "--address k8s-abc-$(PADDOCK_NODE_INDEX).k8s-abc.ml.svc"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	gpus := c.Resources.Limits[kube.GPUResource]
	if gpus.Value() != 1 || c.Resources.Requests.Cpu().String() != "2" || c.Resources.Limits.Memory().String() != "8Gi" {
		t.Errorf("resources: %+v", c.Resources)
	}
	if ps.InitContainers[0].Image != cfg.Image || !slices.Contains(ps.InitContainers[0].Command, "python3") {
		t.Errorf("init container: %+v", ps.InitContainers[0])
	}
	// One node: no Service, no address.
	one := RunJob("k8s-def", "ml", "default.k8s", "default/k8s", []string{"k8s-def"}, PodConfig{Image: "img", Cores: 1})
	if one.Spec.Template.Spec.Subdomain != "" || strings.Contains(strings.Join(one.Spec.Template.Spec.Containers[0].Args, " "), "--address") {
		t.Errorf("a one-node Job has a subdomain or address: %+v", one.Spec.Template.Spec)
	}
}

func TestTargetLabel(t *testing.T) {
	t.Parallel()
	if got := targetLabel("default", "K8s"); got != "default.k8s" {
		t.Errorf("targetLabel = %q", got)
	}
	long := targetLabel(strings.Repeat("w", 60), "k8s")
	if len(long) > 63 || !strings.HasPrefix(long, "t-") {
		t.Errorf("a long name's label %q", long)
	}
}
