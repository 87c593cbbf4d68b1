package compute

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/databricks"
	"github.com/paddock-ml/paddock/internal/secret"
)

// DatabricksProperties are the properties of a databricks target (Azure
// ML's DatabricksCompute): a Databricks workspace reached over its REST API
// with a personal access token (the secret access_token). Each run is a
// one-time Jobs run of a spark_python_task, on an existing all-purpose
// cluster or on a new job cluster made from a spec.
type DatabricksProperties struct {
	Common
	// WorkspaceURL is the workspace's URL, https://HOST (http only on
	// loopback, for a local fake).
	WorkspaceURL string `json:"workspace_url"`
	// ClusterID is the all-purpose cluster runs go to; NewCluster, instead,
	// is the new_cluster spec (Clusters API JSON) of a job cluster made for
	// each run.
	ClusterID  string          `json:"cluster_id,omitempty"`
	NewCluster json.RawMessage `json:"new_cluster,omitempty"`
	// MaxConcurrentRuns is how many of the target's runs are submitted at
	// once; the rest queue in Paddock.
	MaxConcurrentRuns int `json:"max_concurrent_runs"`
}

// DatabricksStatus is what attach found in the workspace.
type DatabricksStatus struct {
	Reachable bool `json:"reachable"`
	// ClusterName, ClusterState and SparkVersion describe the cluster
	// (cluster_id) or, for a new_cluster spec, its runtime version.
	ClusterName  string `json:"cluster_name,omitempty"`
	ClusterState string `json:"cluster_state,omitempty"`
	SparkVersion string `json:"spark_version,omitempty"`
	Error        string `json:"error,omitempty"`
}

// The secret field of a databricks target, and its limits.
const (
	databricksToken             = "access_token"
	defaultDatabricksConcurrent = 10
	maxNewClusterBytes          = 64 << 10
)

type databricksKind struct{ attached }

func init() { Register(databricksKind{}) }

func (databricksKind) Type() string              { return "databricks" }
func (databricksKind) Origin() Origin            { return Attached }
func (databricksKind) SecretFields() []string    { return []string{databricksToken} }
func (databricksKind) UpdatableFields() []string { return []string{"description", "tags"} }

func (databricksKind) Normalize(_ context.Context, raw json.RawMessage, secrets map[string]secret.Value, _ Env) (json.RawMessage, error) {
	var p DatabricksProperties
	if err := decodeStrict(raw, &p); err != nil {
		return nil, err
	}
	if err := p.Common.validate(); err != nil {
		return nil, err
	}
	u, err := workspaceURL(p.WorkspaceURL)
	if err != nil {
		return nil, err
	}
	p.WorkspaceURL = u
	p.ClusterID = strings.TrimSpace(p.ClusterID)
	hasSpec := len(p.NewCluster) > 0 && string(p.NewCluster) != "null"
	switch {
	case !secrets[databricksToken].IsSet():
		return nil, api.Invalid(databricksToken, "access_token is required: a Databricks personal access token (--access-token-file)")
	case p.ClusterID == "" && !hasSpec:
		return nil, api.Invalid("cluster_id", "give cluster_id (an all-purpose cluster runs go to) or new_cluster (the spec of a job cluster made for each run)")
	case p.ClusterID != "" && hasSpec:
		return nil, api.Invalid("cluster_id", "give cluster_id or new_cluster, not both")
	case strings.ContainsAny(p.ClusterID, " /?#&"):
		return nil, api.Invalid("cluster_id", "cluster_id %q must be a cluster id such as 0101-120000-abcd123", p.ClusterID)
	}
	if hasSpec {
		if p.NewCluster, err = newClusterSpec(p.NewCluster); err != nil {
			return nil, err
		}
	} else {
		p.NewCluster = nil
	}
	concurrent := &p.MaxConcurrentRuns
	if p.MaxConcurrentRuns == 0 {
		concurrent = nil
	}
	if p.MaxConcurrentRuns, err = intField("max_concurrent_runs", concurrent, defaultDatabricksConcurrent, 1, maxConcurrentRuns); err != nil {
		return nil, err
	}
	return mustJSON(p), nil
}

// workspaceURL checks a workspace URL and returns it as scheme://host[:port].
func workspaceURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", api.Invalid("workspace_url", "workspace_url is required: the workspace's URL, e.g. https://adb-1234567890123456.7.azuredatabricks.net")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
		return "", api.Invalid("workspace_url", "workspace_url %q must be the workspace's URL, https://HOST, without a path", s)
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return "", api.Invalid("workspace_url", "workspace_url %q must use https (http only for a workspace on this machine's loopback)", s)
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), nil
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// newClusterSpec checks a job cluster spec: a JSON object with the fields
// the Clusters API requires (spark_version; node_type_id or
// instance_pool_id; num_workers or autoscale). Other fields go to
// Databricks as given; it checks them when a run is submitted.
func newClusterSpec(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) > maxNewClusterBytes {
		return nil, api.Invalid("new_cluster", "new_cluster must be at most %d KiB of JSON", maxNewClusterBytes>>10)
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &spec); err != nil || spec == nil {
		return nil, api.Invalid("new_cluster", "new_cluster must be a JSON object: a Clusters API spec such as {\"spark_version\": \"15.4.x-scala2.12\", \"node_type_id\": \"Standard_DS3_v2\", \"num_workers\": 2}")
	}
	str := func(f string) string {
		var s string
		json.Unmarshal(spec[f], &s)
		return strings.TrimSpace(s)
	}
	var workers int
	switch {
	case str("spark_version") == "":
		return nil, api.Invalid("new_cluster.spark_version", "new_cluster needs spark_version, the runtime version such as 15.4.x-scala2.12")
	case str("node_type_id") == "" && str("instance_pool_id") == "":
		return nil, api.Invalid("new_cluster.node_type_id", "new_cluster needs node_type_id (or instance_pool_id), e.g. Standard_DS3_v2")
	case spec["num_workers"] == nil && spec["autoscale"] == nil:
		return nil, api.Invalid("new_cluster.num_workers", "new_cluster needs num_workers or autoscale {min_workers, max_workers}")
	case spec["num_workers"] != nil && (json.Unmarshal(spec["num_workers"], &workers) != nil || workers < 0):
		return nil, api.Invalid("new_cluster.num_workers", "new_cluster.num_workers must be a whole number, 0 or more")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, api.Invalid("new_cluster", "new_cluster must be a JSON object: %v", err)
	}
	return compact.Bytes(), nil
}

func (databricksKind) InitialStatus(json.RawMessage) json.RawMessage {
	return mustJSON(DatabricksStatus{})
}

// DatabricksTarget is what the databricks provider needs of a target: its
// properties and a client holding its access token.
func DatabricksTarget(props json.RawMessage, secrets map[string]secret.Value) (DatabricksProperties, *databricks.Client, error) {
	var p DatabricksProperties
	if err := json.Unmarshal(props, &p); err != nil {
		return p, nil, err
	}
	return p, databricks.New(p.WorkspaceURL, secrets[databricksToken]), nil
}

// Attach checks the token and the cluster with the workspace: it reads
// the cluster (cluster_id), or checks that the spec's spark_version is one
// the workspace offers (new_cluster). Nothing is stored when either fails.
func (databricksKind) Attach(ctx context.Context, props json.RawMessage, secrets map[string]secret.Value) (json.RawMessage, json.RawMessage, error) {
	p, c, err := DatabricksTarget(props, secrets)
	if err != nil {
		return nil, nil, err
	}
	st := DatabricksStatus{Reachable: true}
	if p.ClusterID != "" {
		cl, err := c.GetCluster(ctx, p.ClusterID)
		if err != nil {
			return nil, nil, databricksAttachError(p, err, "cluster_id", "cluster "+p.ClusterID)
		}
		st.ClusterName, st.ClusterState, st.SparkVersion = cl.ClusterName, cl.State, cl.SparkVersion
		return props, mustJSON(st), nil
	}
	var spec struct {
		SparkVersion string `json:"spark_version"`
	}
	json.Unmarshal(p.NewCluster, &spec)
	versions, err := c.SparkVersions(ctx)
	if err != nil {
		return nil, nil, databricksAttachError(p, err, "new_cluster", "its runtime versions")
	}
	if !slices.Contains(versions, spec.SparkVersion) {
		return nil, nil, api.Invalid("new_cluster.spark_version", "the workspace offers no runtime version %q (it offers %s)", spec.SparkVersion, strings.Join(versions, ", "))
	}
	st.SparkVersion = spec.SparkVersion
	return props, mustJSON(st), nil
}

// databricksAttachError says in one sentence why the workspace refused an
// attach: the token, the thing asked for (field), or the workspace being
// out of reach. The token itself is never part of it.
func databricksAttachError(p DatabricksProperties, err error, field, what string) error {
	var e *databricks.Error
	switch {
	case databricks.IsAuth(err):
		return api.Invalid(databricksToken, "the workspace %s refused the access token (%s); give a valid personal access token", p.WorkspaceURL, err)
	case errors.As(err, &e) && (e.Status == http.StatusBadRequest || e.Status == http.StatusNotFound):
		return api.Invalid(field, "the workspace %s refused %s: %s", p.WorkspaceURL, what, e.Message)
	}
	return api.Unavailable("could not read %s from the workspace %s: %v", what, p.WorkspaceURL, err)
}

var (
	_ Attacher    = databricksKind{}
	_ Provisioner = databricksKind{}
	_ NodeKind    = databricksKind{}
	_ RunTarget   = databricksKind{}
)

// Provider implements NodeKind: one in-server agent that runs the
// target's runs as Databricks Jobs runs.
func (databricksKind) Provider(json.RawMessage) string { return "databricks" }

// RunRules implements RunTarget: a run's command is a Python file of its
// source and its arguments (python3 train.py is taken as train.py), run as
// a spark_python_task.
// Its node has one core per run in flight and no GPUs (the cluster's are
// Databricks' business), so a run asking for more is refused at submit.
func (databricksKind) RunRules(props json.RawMessage, _ *Catalog) (RunRules, error) {
	var p DatabricksProperties
	if err := json.Unmarshal(props, &p); err != nil {
		return RunRules{}, err
	}
	size := &api.Size{Name: "a databricks target (one core per run in flight; GPUs and memory are the Databricks cluster's, set in its spec)",
		Cores: p.MaxConcurrentRuns, MemoryGB: DatabricksNodeMemoryGB}
	return RunRules{DefaultCores: 1, NodeSize: size, Command: databricksCommand}, nil
}

// DatabricksNodeMemoryGB is the memory a databricks target's node offers
// runs: no real limit (the cluster's memory is Databricks' business, set
// in its spec), only large enough that no sensible run waits for it.
const DatabricksNodeMemoryGB = 1024

func databricksCommand(cmd []string, spark *api.SparkOptions) ([]string, error) {
	if spark != nil {
		return nil, api.Invalid("spark", "executor settings are only for runs on spark targets; a databricks run's cluster is the target's")
	}
	cmd = pythonApp(cmd)
	if !strings.HasSuffix(cmd[0], ".py") || strings.HasPrefix(cmd[0], "/") || strings.Contains("/"+cmd[0]+"/", "/../") {
		return nil, api.Invalid("command", "on a databricks target the command is a Python file of the run's source and its arguments (e.g. `-- train.py ARGS`), not %q", cmd[0])
	}
	return cmd, nil
}

// pythonApp takes `python3 app.py ARGS` (what the SDK's ScriptRunConfig
// sends) as `app.py ARGS`: on spark and databricks targets the cluster
// starts the Python.
func pythonApp(cmd []string) []string {
	if (cmd[0] == "python" || cmd[0] == "python3") && len(cmd) > 1 && strings.HasSuffix(cmd[1], ".py") {
		return cmd[1:]
	}
	return cmd
}
