package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// RunStore keeps runs, their logs and metrics, and nodes. Run and node
// state changes are written in batches by the dispatcher (one transaction
// for many changes: group commit); logs and metrics are appended directly.
type RunStore interface {
	// SaveBatch inserts or replaces the runs and nodes and deletes the
	// nodes named in deleteNodes, all in one transaction.
	SaveBatch(ctx context.Context, runs []Run, nodes []Node, deleteNodes []string) error
	// GetRun finds a run by id in a workspace, or api.ErrNotFound.
	GetRun(ctx context.Context, workspace, id string) (Run, error)
	// ListRuns lists a workspace's runs that match f, newest first (by
	// Seq), a page at a time: f.BeforeSeq and f.AfterSeq are keyset
	// cursors, so a page costs the same at the millionth run as at the
	// first.
	ListRuns(ctx context.Context, workspace string, f RunFilter) ([]Run, error)
	// ActiveRuns returns every run of every workspace that has not ended.
	ActiveRuns(ctx context.Context) ([]Run, error)
	// MaxRunSeq is the highest submission sequence number used.
	MaxRunSeq(ctx context.Context) (int64, error)
	// RunByIdempotencyKey finds a run submitted with a key, or api.ErrNotFound.
	RunByIdempotencyKey(ctx context.Context, workspace, user, key string) (Run, error)

	// AppendLogs stores log lines of one node (rank) of an attempt; lines
	// already stored (same run, attempt, rank and agent line number) are
	// ignored, so resending is safe. It returns the highest agent line
	// number stored for that rank of the attempt.
	AppendLogs(ctx context.Context, runID string, attempt, rank int, lines []LogLine) (int64, error)
	// LogBytes is the size of a run's stored log lines, in bytes.
	LogBytes(ctx context.Context, runID string) (int64, error)
	// LogAck is the highest agent line number stored for a rank of an attempt.
	LogAck(ctx context.Context, runID string, attempt, rank int) (int64, error)
	// Logs returns up to limit lines after the cursor seq.
	Logs(ctx context.Context, runID string, afterSeq int64, limit int) ([]api.LogLine, error)
	// LogsBefore returns the last limit lines before the cursor seq, in
	// order (oldest first): a log's tail, and the lines above a page
	// read backwards.
	LogsBefore(ctx context.Context, runID string, beforeSeq int64, limit int) ([]api.LogLine, error)

	// AddMetrics stores metric values (of any kind).
	AddMetrics(ctx context.Context, runID string, ms []api.Metric) error
	// Metrics returns every value of a run, by name then step, each in
	// the order it was added.
	Metrics(ctx context.Context, runID string) ([]api.Metric, error)

	// SetRunTags sets and removes tags of a run in one transaction.
	SetRunTags(ctx context.Context, runID string, set map[string]string, remove []string) error
	// RunTags returns the tags of each run that has any, by run id.
	RunTags(ctx context.Context, runIDs ...string) (map[string]map[string]string, error)

	// Nodes returns every node.
	Nodes(ctx context.Context) ([]Node, error)
	// NodeByTokenHash finds the node an agent token belongs to.
	NodeByTokenHash(ctx context.Context, hash string) (Node, error)
}

// RunFilter narrows ListRuns; zero fields do not filter.
type RunFilter struct {
	Compute    string        // lower-case name
	Status     api.RunStatus // exactly this status
	Experiment string        // exactly this experiment
	User       string        // submitted by this user (created_by)
	// BeforeSeq lists the runs submitted before the run with this Seq
	// (the next page, older); AfterSeq those submitted after it (the
	// page before, newer). Either way the page is newest first.
	BeforeSeq, AfterSeq int64
	Limit               int // 0 for the default (100)
}

// Run is a run as stored. The API view (api.Run) is derived from it.
type Run struct {
	api.Run
	Workspace       string
	Seq             int64
	Node            string // node of the current attempt
	TokenHash       string
	IdempotencyKey  string
	CancelRequested string // why a cancel was asked for, while it is pending
	// Parts is how each node of the current attempt ended (multi-node
	// runs end when every part has).
	Parts map[string]Part
}

// runData is what of a run both stores keep in its data column: all but
// the columns they index.
type runData struct {
	api.Run
	CancelRequested string          `json:"cancel_requested,omitempty"`
	Parts           map[string]Part `json:"parts,omitempty"`
}

// EncodeData is the JSON the stores keep in a run's data column.
func (r *Run) EncodeData() ([]byte, error) {
	return json.Marshal(runData{Run: r.Run, CancelRequested: r.CancelRequested, Parts: r.Parts})
}

// RunTag is one row of a run's tags, as the stores read them.
type RunTag struct{ Run, Key, Value string }

// AddTags puts tags into out, a map of each run's tags by run id (what
// RunTags returns).
func AddTags(out map[string]map[string]string, tags []RunTag) {
	for _, t := range tags {
		if out[t.Run] == nil {
			out[t.Run] = map[string]string{}
		}
		out[t.Run][t.Key] = t.Value
	}
}

// DecodeData fills the run from what EncodeData made.
func (r *Run) DecodeData(data []byte) error {
	var d runData
	if err := json.Unmarshal(data, &d); err != nil {
		return err
	}
	r.Run, r.CancelRequested, r.Parts = d.Run, d.CancelRequested, d.Parts
	return nil
}

// Part is one node's share of a multi-node attempt.
type Part struct {
	Status   api.RunStatus `json:"status"`
	ExitCode *int          `json:"exit_code,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// Nodes are the nodes of the run's current attempt, rank 0 first.
func (r *Run) Nodes() []string {
	if r.Node == "" {
		return nil // queued (again): no attempt holds nodes
	}
	if n := len(r.Attempts); n > 0 && len(r.Attempts[n-1].Nodes) > 0 {
		return r.Attempts[n-1].Nodes
	}
	if r.Node != "" {
		return []string{r.Node}
	}
	return nil
}

// Rank is a node's rank in the current attempt, or -1.
func (r *Run) Rank(node string) int {
	for i, n := range r.Nodes() {
		if n == node {
			return i
		}
	}
	return -1
}

// LogLine is one line an agent sends.
type LogLine struct {
	ASeq   int64 // the agent's line number within the attempt, from 1
	Stream string
	Time   time.Time
	Text   string
}

// Node states.
const (
	NodeStarting  = "starting"  // created, agent not ready yet: counts as capacity
	NodeIdle      = "idle"      // ready, nothing placed
	NodeRunning   = "running"   // ready, runs placed
	NodeLeaving   = "leaving"   // being removed: not capacity
	NodeUnusable  = "unusable"  // lost: to be replaced
	NodePreempted = "preempted" // taken back by the provider: to be replaced
)

// Node is one machine (or slice of one) that runs an agent.
type Node struct {
	ID        string    `json:"id"`
	Workspace string    `json:"workspace"`
	Compute   string    `json:"compute"` // lower-case target name
	TokenHash string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	State     string    `json:"state"` // starting, idle, running, unusable, leaving, preempted
	Hostname  string    `json:"hostname,omitempty"`
	Cores     float64   `json:"cores"`
	MemoryGB  float64   `json:"memory_gb"`
	GPUs      []GPU     `json:"gpus,omitempty"`
	Address   string    `json:"address,omitempty"`
	Version   string    `json:"version,omitempty"`
	LastSeen  time.Time `json:"last_seen"`
	Reason    string    `json:"reason,omitempty"` // why it is unusable
	// MaxRuns caps the runs placed at once (an instance's
	// max_concurrent_runs); 0 means no cap.
	MaxRuns int `json:"max_runs,omitempty"`
	// Pin, when set, is the only run the node takes (a Slurm pilot job).
	Pin string `json:"pin,omitempty"`
	// Host is the remote target (an SSH pool host) the node runs on.
	Host string `json:"host,omitempty"`
	// SSH is the node's SSH endpoint (host:port) when it serves one.
	SSH string `json:"ssh,omitempty"`
	// SSHSessions is how many SSH sessions are open; LastActivity is when a
	// run or an SSH session last ended or was active (idle shutdown).
	SSHSessions  int       `json:"ssh_sessions,omitempty"`
	LastActivity time.Time `json:"last_activity,omitempty"`
}

// GPU is one accelerator on a node.
type GPU struct {
	Index    int    `json:"index"`
	Name     string `json:"name"`
	UUID     string `json:"uuid,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"`
}
