package api

import (
	"encoding/json"
	"time"
)

// RunStatus is where a run is in its lifecycle.
type RunStatus string

// Run statuses, in the order a run normally goes through them.
const (
	RunQueued       RunStatus = "Queued"       // waiting for capacity on its target
	RunProvisioning RunStatus = "Provisioning" // waiting for nodes to be made
	RunStarting     RunStatus = "Starting"     // placed on a node; the agent is picking it up
	RunPreparing    RunStatus = "Preparing"    // the agent fetches the source and builds the environment
	RunRunning      RunStatus = "Running"
	RunFinalizing   RunStatus = "Finalizing" // the process ended; outputs are being uploaded
	RunCompleted    RunStatus = "Completed"
	RunFailed       RunStatus = "Failed"
	RunCanceled     RunStatus = "Canceled"
)

// Terminal reports whether the run has ended.
func (s RunStatus) Terminal() bool {
	return s == RunCompleted || s == RunFailed || s == RunCanceled
}

// Environment says what a run's command runs in; at most one field is set.
// None set means the node's python3.
type Environment struct {
	Python       string `json:"python,omitempty"`       // an existing interpreter
	Requirements string `json:"requirements,omitempty"` // contents of a requirements.txt: a venv made once per content hash
	Image        string `json:"image,omitempty"`        // a container image, run with podman or docker
	// Conda is the contents of a conda environment file (environment.yml):
	// its pip packages go into a venv made once per content hash, on a
	// node whose python3 meets the file's python version; conda packages
	// need conda or micromamba on the node.
	Conda string `json:"conda,omitempty"`
}

// Resources a run asks for on each node.
type Resources struct {
	Cores    float64 `json:"cores"`
	MemoryGB float64 `json:"memory_gb"`
	GPUs     int     `json:"gpus"`
}

// Attempt is one try at running a run.
type Attempt struct {
	Number int    `json:"number"`
	Node   string `json:"node"`
	GPUs   []int  `json:"gpus,omitempty"` // GPU indices assigned on the node
	// Nodes are all the attempt's nodes, rank 0 first (multi-node runs);
	// NodeGPUs the GPU indices assigned on each.
	Nodes     []string         `json:"nodes,omitempty"`
	NodeGPUs  map[string][]int `json:"node_gpus,omitempty"`
	Status    RunStatus        `json:"status"`
	StartedAt *time.Time       `json:"started_at,omitempty"`
	EndedAt   *time.Time       `json:"ended_at,omitempty"`
	ExitCode  *int             `json:"exit_code,omitempty"`
	Reason    string           `json:"reason,omitempty"` // e.g. Preempted, NodeLost, Canceled, MaxRunDurationExceeded
	Error     string           `json:"error,omitempty"`
}

// Metric kinds: what a logged value is. The default (empty) is a number.
const (
	MetricNumber = ""       // Value holds it
	MetricString = "string" // Text holds it
	MetricRow    = "row"    // Data holds one row of a table: an object of column → number, string, boolean or null
	MetricJSON   = "json"   // Data holds a JSON value (a list, a confusion matrix …)
	MetricImage  = "image"  // Text names the run file that holds the image (PUT .../runs/{id}/files/{path})
)

// MetricKinds lists the metric kinds.
var MetricKinds = []string{MetricNumber, MetricString, MetricRow, MetricJSON, MetricImage}

// Metric is one logged value: a number unless Kind says otherwise.
type Metric struct {
	Name  string          `json:"name"`
	Kind  string          `json:"kind,omitempty"`
	Value float64         `json:"value"`
	Text  string          `json:"text,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	Step  int64           `json:"step"`
	Time  time.Time       `json:"time"`
}

// OutputFile is one file a run wrote under ./outputs.
type OutputFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// Where a run's file comes from.
const (
	FileOutput   = "outputs"  // the run's ./outputs, uploaded by its agent
	FileUploaded = "uploaded" // posted with PUT .../runs/{id}/files/{path} (upload_file, log_image)
)

// RunFile is one file of a run: one of its outputs (path outputs/...) or
// one the run or its user uploaded (the path it was given).
type RunFile struct {
	Path   string    `json:"path"`
	Size   int64     `json:"size"`
	Origin string    `json:"origin"` // outputs or uploaded
	Time   time.Time `json:"time,omitempty"`
}

// RunFileList is the body of GET .../runs/{id}/files.
type RunFileList struct {
	Items []RunFile `json:"items"`
}

// Run is a training run as the API returns it.
type Run struct {
	ID                    string            `json:"id"`
	Experiment            string            `json:"experiment"`
	Compute               string            `json:"compute"`
	Command               []string          `json:"command"`
	Source                string            `json:"source,omitempty"` // sha256 of the source snapshot
	Environment           Environment       `json:"environment"`
	Env                   map[string]string `json:"env,omitempty"`
	NodeCount             int               `json:"node_count"`
	ProcessCountPerNode   int               `json:"process_count_per_node"`
	Distribution          string            `json:"distribution"`
	Resources             Resources         `json:"resources"`
	MaxRunDurationSeconds int64             `json:"max_run_duration_seconds,omitempty"`
	Status                RunStatus         `json:"status"`
	StatusReason          string            `json:"status_reason,omitempty"`
	Attempt               int               `json:"attempt"`
	Attempts              []Attempt         `json:"attempts"`
	ExitCode              *int              `json:"exit_code,omitempty"`
	Error                 string            `json:"error,omitempty"`
	CreatedBy             string            `json:"created_by"`
	CreatedAt             time.Time         `json:"created_at"`
	StartedAt             *time.Time        `json:"started_at,omitempty"`
	EndedAt               *time.Time        `json:"ended_at,omitempty"`
	Metrics               map[string]Metric `json:"metrics,omitempty"` // the latest value of each metric
	Outputs               []OutputFile      `json:"outputs,omitempty"`
	Tags                  map[string]string `json:"tags,omitempty"`
	// Interactive runs (Azure ML's start_logging) run no command: their
	// client logs to them and ends them with :complete or :fail.
	Interactive bool `json:"interactive,omitempty"`
	// FailRequested is why the run said it failed (Run.fail from inside
	// it): the attempt ends Failed even if its command exits 0.
	FailRequested string `json:"fail_requested,omitempty"`
	// MaxRunDurationFromPolicy says the workspace's policy set
	// max_run_duration_seconds (the run asked for no limit).
	MaxRunDurationFromPolicy bool `json:"max_run_duration_from_policy,omitempty"`
	// IdentityType and Identities are the managed identities the run
	// holds: its target's when it was submitted (see docs/security.md).
	IdentityType string   `json:"identity_type,omitempty"`
	Identities   []string `json:"identities,omitempty"`
}

// ComputeSpec asks for a cluster made for one run and deleted when the run
// ends (Azure ML's run-based compute), instead of naming a target.
type ComputeSpec struct {
	VMSize     string `json:"vm_size"`
	MaxNodes   int    `json:"max_nodes"`
	MinNodes   int    `json:"min_nodes,omitempty"`
	VMPriority string `json:"vm_priority,omitempty"`
}

// RunSubmit is the body of POST .../runs.
type RunSubmit struct {
	Compute               string            `json:"compute,omitempty"`
	ComputeSpec           *ComputeSpec      `json:"compute_spec,omitempty"`
	Experiment            string            `json:"experiment,omitempty"`
	Command               []string          `json:"command"`
	Source                string            `json:"source,omitempty"` // digest returned by PUT .../snapshots
	Environment           Environment       `json:"environment,omitempty"`
	Env                   map[string]string `json:"env,omitempty"`
	NodeCount             int               `json:"node_count,omitempty"`
	ProcessCountPerNode   int               `json:"process_count_per_node,omitempty"`
	Distribution          string            `json:"distribution,omitempty"`
	Resources             *Resources        `json:"resources,omitempty"`
	MaxRunDurationSeconds int64             `json:"max_run_duration_seconds,omitempty"`
	Tags                  map[string]string `json:"tags,omitempty"`
	// Interactive starts a run that runs nothing (no compute, no command):
	// it is Running at once and its client ends it.
	Interactive bool `json:"interactive,omitempty"`
}

// RunUpdate is the body of PATCH .../runs/{id}: tags to set, and (null)
// to remove.
type RunUpdate struct {
	Tags map[string]*string `json:"tags"`
}

// RunEnd is the optional body of POST .../runs/{id}:fail.
type RunEnd struct {
	Error string `json:"error,omitempty"`
}

// RunList is the body of GET .../runs.
type RunList struct {
	Items []Run `json:"items"`
}

// LogLine is one line of a run's output.
type LogLine struct {
	Seq     int64     `json:"seq"` // position in the run's log, from 1, across attempts
	Attempt int       `json:"attempt"`
	Rank    int       `json:"rank"`   // node rank of a multi-node run (0 otherwise)
	Stream  string    `json:"stream"` // stdout or stderr
	Time    time.Time `json:"time"`
	Text    string    `json:"text"`
}

// MetricPost is the body of POST .../runs/{id}/metrics: one metric or a batch.
type MetricPost struct {
	Name    string          `json:"name,omitempty"`
	Kind    string          `json:"kind,omitempty"`
	Value   *float64        `json:"value,omitempty"`
	Text    *string         `json:"text,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Step    *int64          `json:"step,omitempty"`
	Metrics []MetricItem    `json:"metrics,omitempty"`
}

// MetricItem is one entry of a MetricPost batch: value for a number, text
// for a string or an image's file, data for a row or a JSON value.
type MetricItem struct {
	Name  string          `json:"name"`
	Kind  string          `json:"kind,omitempty"`
	Value float64         `json:"value"`
	Text  string          `json:"text,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	Step  *int64          `json:"step,omitempty"`
}

// MetricList is the body of GET .../runs/{id}/metrics: every value logged.
type MetricList struct {
	Items []Metric `json:"items"`
}

// SnapshotRef is the answer to a snapshot upload.
type SnapshotRef struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}
