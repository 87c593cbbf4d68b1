package compute_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/secret"
)

func kubeconfig() map[string]secret.Value {
	return map[string]secret.Value{"kubeconfig": secret.New("apiVersion: v1\nkind: Config\n")}
}

func TestKubernetesNormalize(t *testing.T) {
	t.Parallel()
	k, env := mustKind(t, "kubernetes"), testEnv(t)
	tests := []struct {
		desc, props string
		want        map[string]any
	}{
		{"defaults", `{}`, map[string]any{"image": compute.DefaultKubernetesImage}},
		{"everything", `{"context":"prod","namespace":"ml","image":"pytorch/pytorch:2.5","server_url":"http://paddock.example:8765/",
			"instance_types":{"small":{"cpu":"2","memory":"8Gi"},"gpu":{"cpu":"8000m","memory":"65536Mi","gpu":1,"node_selector":{"gpu":"a100"}}},
			"lowpriority_priority_class":"paddock-low","lowpriority_tolerations":["spot=true:NoSchedule","preemptible"],"description":"d","tags":{"a":"b"}}`,
			map[string]any{"context": "prod", "namespace": "ml", "image": "pytorch/pytorch:2.5", "server_url": "http://paddock.example:8765",
				"instance_types": map[string]any{"small": map[string]any{"cpu": "2", "memory": "8Gi"},
					"gpu": map[string]any{"cpu": "8", "memory": "64Gi", "gpu": float64(1), "node_selector": map[string]any{"gpu": "a100"}}},
				"lowpriority_priority_class": "paddock-low", "lowpriority_tolerations": []any{"spot=true:NoSchedule", "preemptible"},
				"description": "d", "tags": map[string]any{"a": "b"}}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := k.Normalize(t.Context(), json.RawMessage(tc.props), kubeconfig(), env)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, obj(t, got)); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
			wantIdempotent(t, k, got, kubeconfig(), env)
		})
	}
}

func TestKubernetesNormalizeInvalid(t *testing.T) {
	t.Parallel()
	k, env := mustKind(t, "kubernetes"), testEnv(t)
	tests := []struct {
		desc, props string
		secrets     map[string]secret.Value
		field, msg  string
	}{
		{"no kubeconfig", `{}`, nil, "kubeconfig", "required"},
		{"kubeconfig left in properties", `{"kubeconfig":"x"}`, kubeconfig(), "kubeconfig", "unknown property"},
		{"bad namespace", `{"namespace":"ML_jobs"}`, kubeconfig(), "namespace", "lower-case"},
		{"long namespace", `{"namespace":"` + strings.Repeat("a", 64) + `"}`, kubeconfig(), "namespace", "63"},
		{"bad image", `{"image":"--privileged"}`, kubeconfig(), "image", "image reference"},
		{"server_url not http", `{"server_url":"ftp://x"}`, kubeconfig(), "server_url", "http"},
		{"server_url without host", `{"server_url":"http://"}`, kubeconfig(), "server_url", "http"},
		{"instance type name", `{"instance_types":{"9x":{"cpu":"1"}}}`, kubeconfig(), "instance_types", "starting with a letter"},
		{"instance type without cpu", `{"instance_types":{"small":{"memory":"1Gi"}}}`, kubeconfig(), "instance_types.small.cpu", "quantity"},
		{"instance type bad cpu", `{"instance_types":{"small":{"cpu":"four"}}}`, kubeconfig(), "instance_types.small.cpu", "four"},
		{"instance type zero cpu", `{"instance_types":{"small":{"cpu":"0"}}}`, kubeconfig(), "instance_types.small.cpu", "above 0"},
		{"instance type bad memory", `{"instance_types":{"small":{"cpu":"1","memory":"lots"}}}`, kubeconfig(), "instance_types.small.memory", "lots"},
		{"instance type gpus", `{"instance_types":{"small":{"cpu":"1","gpu":65}}}`, kubeconfig(), "instance_types.small.gpu", "64"},
		{"instance type selector", `{"instance_types":{"small":{"cpu":"1","node_selector":{"a b":"c"}}}}`, kubeconfig(), "instance_types.small.node_selector", "label"},
		{"instance type unknown field", `{"instance_types":{"small":{"cpu":"1","cores":2}}}`, kubeconfig(), "cores", "unknown property"},
		{"priority class", `{"lowpriority_priority_class":"Low Priority"}`, kubeconfig(), "lowpriority_priority_class", "PriorityClass"},
		{"toleration effect", `{"lowpriority_tolerations":["spot=true:Never"]}`, kubeconfig(), "lowpriority_tolerations", "Effect"},
		{"unknown property", `{"kube_config":"x"}`, kubeconfig(), "kube_config", "unknown property"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := k.Normalize(t.Context(), json.RawMessage(tc.props), tc.secrets, env)
			wantRefused(t, got, err, tc.field, tc.msg)
		})
	}
}

// A run gets the smallest instance type that fits it; one that fits none
// is refused with what the target offers.
func TestPickInstanceType(t *testing.T) {
	t.Parallel()
	types := map[string]compute.InstanceType{
		"small": {CPU: "2", Memory: "8Gi"},
		"large": {CPU: "16", Memory: "64Gi"},
		"gpu":   {CPU: "8", Memory: "64Gi", GPU: 1},
		"nomem": {CPU: "4"},
	}
	tests := []struct {
		cores, mem float64
		gpus       int
		want       string
	}{
		{1, 0, 0, "small"},
		{2, 8, 0, "small"},
		{3, 1, 0, "nomem"},
		{4, 100, 0, "nomem"}, // no memory limit: any memory fits
		{5, 1, 0, "large"},
		{1, 0, 1, "gpu"},
		{9, 0, 1, ""},
		{1, 0, 2, ""},
	}
	for _, tc := range tests {
		name, _, err := compute.PickInstanceType(types, tc.cores, tc.mem, tc.gpus)
		if name != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("PickInstanceType(%g cores, %g GiB, %d GPUs) = %q, %v; want %q", tc.cores, tc.mem, tc.gpus, name, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "small (cpu 2, memory 8Gi, gpu 0)") {
			t.Errorf("the error does not say what the target offers: %v", err)
		}
	}
}

// Runs on a target with instance types must fit the largest of them at
// submission; without, anything goes (the cluster's scheduler says).
func TestKubernetesRunRules(t *testing.T) {
	t.Parallel()
	k := mustKind(t, "kubernetes").(compute.RunTarget)
	r, err := k.RunRules(json.RawMessage(`{}`), nil)
	if err != nil || r.NodeSize != nil || r.MaxNodes != compute.MaxKubernetesNodes || r.DefaultCores != 1 {
		t.Errorf("without instance types: %+v %v", r, err)
	}
	r, err = k.RunRules(json.RawMessage(`{"instance_types":{"a":{"cpu":"2","memory":"8Gi"},"b":{"cpu":"500m","gpu":2}}}`), nil)
	if err != nil || r.NodeSize == nil || r.NodeSize.Cores != 2 || r.NodeSize.GPUs != 2 || r.NodeSize.MemoryGB < 1e300 {
		t.Errorf("with instance types: %+v %v", r.NodeSize, err)
	}
}

func TestParseToleration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]compute.Toleration{
		"spot":                    {Key: "spot", Exists: true},
		"spot=true":               {Key: "spot", Value: "true"},
		"spot:NoSchedule":         {Key: "spot", Exists: true, Effect: "NoSchedule"},
		"k8s.io/spot=1:NoExecute": {Key: "k8s.io/spot", Value: "1", Effect: "NoExecute"},
	} {
		got, err := compute.ParseToleration(in)
		if err != nil || got != want {
			t.Errorf("ParseToleration(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "=x", "a=b:Sometimes", "a b"} {
		if _, err := compute.ParseToleration(in); err == nil {
			t.Errorf("ParseToleration(%q) accepted", in)
		}
	}
}
