package compute_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/databricks/databrickstest"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/store"
)

func TestDatabricksNormalize(t *testing.T) {
	t.Parallel()
	k := mustKind(t, "databricks")
	if k.Origin() != compute.Attached || strings.Join(k.SecretFields(), ",") != "access_token" {
		t.Errorf("databricks: origin %v, secrets %v", k.Origin(), k.SecretFields())
	}
	tok := sparkSecrets("access_token", "dapi-x")
	got, err := k.Normalize(t.Context(), json.RawMessage(`{"workspace_url":" https://ADB-1.2.azuredatabricks.net/ ","cluster_id":"0101-1-abc"}`), tok, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	m := obj(t, got)
	if m["workspace_url"] != "https://adb-1.2.azuredatabricks.net" || m["cluster_id"] != "0101-1-abc" || m["max_concurrent_runs"] != float64(10) || m["new_cluster"] != nil {
		t.Errorf("normalized: %s", got)
	}
	wantIdempotent(t, k, got, tok, testEnv(t))
	spec := `{"workspace_url":"http://127.0.0.1:9","new_cluster":{"spark_version":"15.4.x-scala2.12", "node_type_id":"n","autoscale":{"min_workers":1,"max_workers":4},"custom_tags":{"a":"b"}},"max_concurrent_runs":3}`
	got, err = k.Normalize(t.Context(), json.RawMessage(spec), tok, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	if m = obj(t, got); m["workspace_url"] != "http://127.0.0.1:9" || m["max_concurrent_runs"] != float64(3) || !strings.Contains(string(got), `"custom_tags":{"a":"b"}`) {
		t.Errorf("with a new_cluster spec: %s", got)
	}
	wantIdempotent(t, k, got, tok, testEnv(t))

	base := `"workspace_url":"https://w.example"`
	for _, tc := range []struct {
		props, field, msg string
		secrets           map[string]secret.Value
	}{
		{`{"cluster_id":"c"}`, "workspace_url", "workspace_url is required", tok},
		{`{"workspace_url":"w.example","cluster_id":"c"}`, "workspace_url", "must be the workspace's URL", tok},
		{`{"workspace_url":"ftp://w.example","cluster_id":"c"}`, "workspace_url", "must be the workspace's URL", tok},
		{`{"workspace_url":"https://w.example/some/path","cluster_id":"c"}`, "workspace_url", "without a path", tok},
		{`{"workspace_url":"https://u:p@w.example","cluster_id":"c"}`, "workspace_url", "must be the workspace's URL", tok},
		{`{"workspace_url":"http://w.example","cluster_id":"c"}`, "workspace_url", "must use https", tok},
		{`{` + base + `,"cluster_id":"c"}`, "access_token", "access_token is required", nil},
		{`{` + base + `}`, "cluster_id", "give cluster_id", tok},
		{`{` + base + `,"cluster_id":"c","new_cluster":{"spark_version":"v","node_type_id":"n","num_workers":1}}`, "cluster_id", "not both", tok},
		{`{` + base + `,"cluster_id":"a b"}`, "cluster_id", "must be a cluster id", tok},
		{`{` + base + `,"new_cluster":[1]}`, "new_cluster", "must be a JSON object", tok},
		{`{` + base + `,"new_cluster":{"node_type_id":"n","num_workers":1}}`, "new_cluster.spark_version", "needs spark_version", tok},
		{`{` + base + `,"new_cluster":{"spark_version":"v","num_workers":1}}`, "new_cluster.node_type_id", "needs node_type_id", tok},
		{`{` + base + `,"new_cluster":{"spark_version":"v","node_type_id":"n"}}`, "new_cluster.num_workers", "num_workers or autoscale", tok},
		{`{` + base + `,"new_cluster":{"spark_version":"v","node_type_id":"n","num_workers":-1}}`, "new_cluster.num_workers", "0 or more", tok},
		{`{` + base + `,"new_cluster":{"spark_version":"v","node_type_id":"n","num_workers":1,"x":"` + strings.Repeat("a", 70000) + `"}}`, "new_cluster", "at most 64 KiB", tok},
		{`{` + base + `,"cluster_id":"c","max_concurrent_runs":-1}`, "max_concurrent_runs", "at least 1", tok},
		{`{` + base + `,"cluster_id":"c","max_concurrent_runs":5000}`, "max_concurrent_runs", "at most 1000", tok},
		{`{` + base + `,"cluster_id":"c","token":"x"}`, "token", "unknown property", tok},
	} {
		got, err := k.Normalize(t.Context(), json.RawMessage(tc.props), tc.secrets, testEnv(t))
		wantRefused(t, got, err, tc.field, tc.msg)
	}
}

// A run's command on a databricks target is a Python file of its source
// and its arguments.
func TestDatabricksRunCommand(t *testing.T) {
	t.Parallel()
	rules, ok, err := compute.RunRulesOf(store.Compute{Type: "databricks", Name: "d", Properties: json.RawMessage(`{}`)}, nil)
	if err != nil || !ok || rules.Command == nil {
		t.Fatalf("RunRulesOf: %+v %v %v", rules, ok, err)
	}
	for in, want := range map[string]string{"train.py --epochs 2": "train.py --epochs 2", "python3 src/train.py x": "src/train.py x"} {
		if cmd, err := rules.Command(strings.Fields(in), nil); err != nil || strings.Join(cmd, " ") != want {
			t.Errorf("%q: %q %v", in, cmd, err)
		}
	}
	for _, bad := range []string{"sh -c x", "python3 -c print(1)", "/abs/train.py", "../up.py", "a/../../b.py"} {
		_, err := rules.Command(strings.Fields(bad), nil)
		wantInvalid(t, err, "command")
	}
	_, err = rules.Command([]string{"train.py"}, &api.SparkOptions{NumExecutors: 2})
	wantInvalid(t, err, "spark")
}

// Attach asks the workspace (here the fake) about the token and the
// cluster; every refusal is one sentence naming the field and never the
// token.
func TestDatabricksAttach(t *testing.T) {
	f, err := databrickstest.Start("dapi-good", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	att := mustKind(t, "databricks").(compute.Attacher)
	props := func(extra string) json.RawMessage {
		return json.RawMessage(`{"workspace_url":"` + f.URL + `",` + extra + `,"max_concurrent_runs":10}`)
	}
	good := sparkSecrets("access_token", "dapi-good")
	_, st, err := att.Attach(t.Context(), props(`"cluster_id":"`+databrickstest.ClusterID+`"`), good)
	if err != nil || !strings.Contains(string(st), `"cluster_state":"RUNNING"`) || !strings.Contains(string(st), `"spark_version":"`+databrickstest.SparkVersion) {
		t.Fatalf("attach: %s %v", st, err)
	}
	spec := `"new_cluster":{"spark_version":"` + databrickstest.SparkVersion + `","node_type_id":"n","num_workers":1}`
	if _, st, err = att.Attach(t.Context(), props(spec), good); err != nil || !strings.Contains(string(st), `"reachable":true`) {
		t.Fatalf("attach with a spec: %s %v", st, err)
	}
	for _, tc := range []struct {
		props   json.RawMessage
		secrets map[string]secret.Value
		field   string
		msg     string
	}{
		{props(`"cluster_id":"` + databrickstest.ClusterID + `"`), sparkSecrets("access_token", "dapi-bad"), "access_token", "refused the access token"},
		{props(`"cluster_id":"0000-nope"`), good, "cluster_id", "Cluster 0000-nope does not exist"},
		{props(`"new_cluster":{"spark_version":"1.0","node_type_id":"n","num_workers":1}`), good, "new_cluster.spark_version", "offers no runtime version \"1.0\""},
	} {
		_, _, err := att.Attach(t.Context(), tc.props, tc.secrets)
		e := wantInvalid(t, err, tc.field)
		if !strings.Contains(e.Message, tc.msg) || strings.Contains(e.Message, "dapi-bad") || strings.Count(e.Message, ". ") > 0 {
			t.Errorf("%s: %q", tc.field, e.Message)
		}
	}
	f.Close()
	_, _, err = att.Attach(t.Context(), props(`"cluster_id":"x"`), good)
	if !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("a workspace that does not answer: %v", err)
	}
}
