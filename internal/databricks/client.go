// Package databricks is a small typed client of the parts of the
// Databricks REST API that Paddock's databricks targets use: the Jobs API
// 2.1 (runs/submit, runs/get, runs/get-output, runs/cancel), DBFS 2.0
// (put, create/add-block/close, mkdirs, list, read, delete) and two reads of
// the Clusters API 2.0 (clusters/get, clusters/spark-versions).
//
// The vendor's Go SDK does not resolve from the machines Paddock is built
// on, and Paddock needs a dozen calls of it, so this is written against the
// vendor's published API reference. The requests and answers it knows are
// the ones package databrickstest's fake workspace enforces; no call here
// has been made against a real workspace (docs/databricks.md).
package databricks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/internal/secret"
)

// Client calls one Databricks workspace with a personal access token.
// Its methods may be called concurrently.
type Client struct {
	// URL is the workspace's URL, e.g. https://adb-123.4.azuredatabricks.net.
	URL   string
	Token secret.Value
	HTTP  *http.Client
}

// New returns a client of the workspace at url.
func New(url string, token secret.Value) *Client {
	return &Client{URL: strings.TrimRight(url, "/"), Token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// Error is an answer of the workspace other than 200: its HTTP status and
// the error_code and message of Databricks' error body.
type Error struct {
	Status  int
	Code    string `json:"error_code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// IsAuth reports whether err is the workspace refusing the token (401 or
// 403).
func IsAuth(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden)
}

// IsNotFound reports whether err is RESOURCE_DOES_NOT_EXIST (or a 404).
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusNotFound || e.Code == "RESOURCE_DOES_NOT_EXIST")
}

// call sends one request: a GET with query, or a POST with body as JSON.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := c.URL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token.Reveal())
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(data))
			if len(e.Message) > 200 || e.Message == "" {
				e.Message = http.StatusText(resp.StatusCode)
			}
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the workspace's answer is not the JSON expected: %w", method, path, err)
	}
	return nil
}

// Cluster is what clusters/get returns that Paddock reads.
type Cluster struct {
	ClusterID    string `json:"cluster_id"`
	ClusterName  string `json:"cluster_name"`
	State        string `json:"state"`
	SparkVersion string `json:"spark_version"`
	StateMessage string `json:"state_message,omitempty"`
}

// GetCluster reads an all-purpose cluster (GET /api/2.0/clusters/get).
func (c *Client) GetCluster(ctx context.Context, id string) (Cluster, error) {
	var out Cluster
	err := c.call(ctx, http.MethodGet, "/api/2.0/clusters/get", url.Values{"cluster_id": {id}}, nil, &out)
	return out, err
}

// SparkVersions lists the runtime versions new clusters may have (GET
// /api/2.0/clusters/spark-versions): their keys, e.g. 15.4.x-scala2.12.
func (c *Client) SparkVersions(ctx context.Context) ([]string, error) {
	var out struct {
		Versions []struct {
			Key  string `json:"key"`
			Name string `json:"name"`
		} `json:"versions"`
	}
	if err := c.call(ctx, http.MethodGet, "/api/2.0/clusters/spark-versions", nil, nil, &out); err != nil {
		return nil, err
	}
	keys := make([]string, len(out.Versions))
	for i, v := range out.Versions {
		keys[i] = v.Key
	}
	return keys, nil
}

// SubmitRun is the body of runs/submit: a one-time run of one task.
type SubmitRun struct {
	RunName string `json:"run_name,omitempty"`
	// IdempotencyToken makes a retried submit return the run the first one
	// made instead of starting a second (at most 64 characters).
	IdempotencyToken string `json:"idempotency_token,omitempty"`
	TimeoutSeconds   int64  `json:"timeout_seconds,omitempty"`
	Tasks            []Task `json:"tasks"`
}

// Task is one task of a submitted run: a Python file run by spark on an
// existing cluster or on a new one made for the run.
type Task struct {
	TaskKey           string           `json:"task_key"`
	SparkPythonTask   *SparkPythonTask `json:"spark_python_task"`
	ExistingClusterID string           `json:"existing_cluster_id,omitempty"`
	NewCluster        json.RawMessage  `json:"new_cluster,omitempty"`
}

// SparkPythonTask runs PythonFile (a dbfs:/ path) with Parameters as its
// arguments.
type SparkPythonTask struct {
	PythonFile string   `json:"python_file"`
	Parameters []string `json:"parameters,omitempty"`
}

// Submit starts a one-time run (POST /api/2.1/jobs/runs/submit) and returns
// its run_id.
func (c *Client) Submit(ctx context.Context, r SubmitRun) (int64, error) {
	var out struct {
		RunID int64 `json:"run_id"`
	}
	if err := c.call(ctx, http.MethodPost, "/api/2.1/jobs/runs/submit", nil, r, &out); err != nil {
		return 0, err
	}
	if out.RunID == 0 {
		return 0, errors.New("runs/submit answered without a run_id")
	}
	return out.RunID, nil
}

// Life-cycle states of a run (state.life_cycle_state).
const (
	Pending       = "PENDING"
	Running       = "RUNNING"
	Terminating   = "TERMINATING"
	Terminated    = "TERMINATED"
	Skipped       = "SKIPPED"
	InternalError = "INTERNAL_ERROR"
)

// Result states of a run that ended (state.result_state).
const (
	Success  = "SUCCESS"
	Failed   = "FAILED"
	TimedOut = "TIMEDOUT"
	Canceled = "CANCELED"
)

// RunState is a run's or a task's state.
type RunState struct {
	LifeCycleState string `json:"life_cycle_state"`
	ResultState    string `json:"result_state,omitempty"`
	StateMessage   string `json:"state_message,omitempty"`
}

// Ended reports whether the run will not change again.
func (s RunState) Ended() bool {
	switch s.LifeCycleState {
	case Terminated, Skipped, InternalError:
		return true
	}
	return false
}

// Run is what runs/get returns that Paddock reads.
type Run struct {
	RunID      int64     `json:"run_id"`
	State      RunState  `json:"state"`
	RunPageURL string    `json:"run_page_url,omitempty"`
	Tasks      []TaskRun `json:"tasks,omitempty"`
}

// TaskRun is one task of a run, with its own run_id (what get-output
// takes).
type TaskRun struct {
	RunID   int64    `json:"run_id"`
	TaskKey string   `json:"task_key"`
	State   RunState `json:"state"`
}

// GetRun reads a run (GET /api/2.1/jobs/runs/get).
func (c *Client) GetRun(ctx context.Context, id int64) (Run, error) {
	var out Run
	err := c.getRun(ctx, "get", id, &out)
	return out, err
}

// getRun calls GET /api/2.1/jobs/runs/WHAT?run_id=ID.
func (c *Client) getRun(ctx context.Context, what string, id int64, out any) error {
	return c.call(ctx, http.MethodGet, "/api/2.1/jobs/runs/"+what, url.Values{"run_id": {strconv.FormatInt(id, 10)}}, nil, out)
}

// RunOutput is what runs/get-output returns of a task run: the stdout of
// a spark_python_task (its last 5 MB) and, when it failed, the error.
type RunOutput struct {
	Logs          string `json:"logs,omitempty"`
	LogsTruncated bool   `json:"logs_truncated,omitempty"`
	Error         string `json:"error,omitempty"`
	ErrorTrace    string `json:"error_trace,omitempty"`
}

// GetOutput reads a task run's output (GET /api/2.1/jobs/runs/get-output);
// id is the task's run_id, not the multi-task run's.
func (c *Client) GetOutput(ctx context.Context, id int64) (RunOutput, error) {
	var out RunOutput
	err := c.getRun(ctx, "get-output", id, &out)
	return out, err
}

// Cancel asks for a run to be cancelled (POST /api/2.1/jobs/runs/cancel);
// the run goes through TERMINATING to TERMINATED CANCELED.
func (c *Client) Cancel(ctx context.Context, id int64) error {
	return c.call(ctx, http.MethodPost, "/api/2.1/jobs/runs/cancel", nil, map[string]int64{"run_id": id}, nil)
}

// MaxBlock is the most DBFS takes or gives in one put, add-block or read.
const MaxBlock = 1 << 20

// Mkdirs makes a DBFS directory and its parents (POST /api/2.0/dbfs/mkdirs).
func (c *Client) Mkdirs(ctx context.Context, path string) error {
	return c.call(ctx, http.MethodPost, "/api/2.0/dbfs/mkdirs", nil, map[string]string{"path": path}, nil)
}

// Put writes a file to DBFS, replacing one there: in one put of up to
// MaxBlock bytes, else through a streaming handle (create, add-block,
// close).
func (c *Client) Put(ctx context.Context, path string, data []byte) error {
	if len(data) <= MaxBlock {
		return c.call(ctx, http.MethodPost, "/api/2.0/dbfs/put", nil, map[string]any{
			"path": path, "contents": base64.StdEncoding.EncodeToString(data), "overwrite": true}, nil)
	}
	var h struct {
		Handle int64 `json:"handle"`
	}
	if err := c.call(ctx, http.MethodPost, "/api/2.0/dbfs/create", nil, map[string]any{"path": path, "overwrite": true}, &h); err != nil {
		return err
	}
	for len(data) > 0 {
		n := min(len(data), MaxBlock)
		if err := c.call(ctx, http.MethodPost, "/api/2.0/dbfs/add-block", nil, map[string]any{
			"handle": h.Handle, "data": base64.StdEncoding.EncodeToString(data[:n])}, nil); err != nil {
			return err
		}
		data = data[n:]
	}
	return c.call(ctx, http.MethodPost, "/api/2.0/dbfs/close", nil, map[string]int64{"handle": h.Handle}, nil)
}

// FileInfo is one entry of a DBFS listing.
type FileInfo struct {
	Path     string `json:"path"`
	IsDir    bool   `json:"is_dir"`
	FileSize int64  `json:"file_size"`
}

// List lists a DBFS directory (GET /api/2.0/dbfs/list); a path that does
// not exist is an error IsNotFound matches.
func (c *Client) List(ctx context.Context, path string) ([]FileInfo, error) {
	var out struct {
		Files []FileInfo `json:"files"`
	}
	err := c.call(ctx, http.MethodGet, "/api/2.0/dbfs/list", url.Values{"path": {path}}, nil, &out)
	return out.Files, err
}

// Read reads a whole DBFS file of size bytes, MaxBlock at a time (GET
// /api/2.0/dbfs/read).
func (c *Client) Read(ctx context.Context, path string, size int64) ([]byte, error) {
	var buf bytes.Buffer
	for off := int64(0); off < size || off == 0; {
		var out struct {
			BytesRead int64  `json:"bytes_read"`
			Data      string `json:"data"`
		}
		q := url.Values{"path": {path}, "offset": {strconv.FormatInt(off, 10)}, "length": {strconv.Itoa(MaxBlock)}}
		if err := c.call(ctx, http.MethodGet, "/api/2.0/dbfs/read", q, nil, &out); err != nil {
			return nil, err
		}
		data, err := base64.StdEncoding.DecodeString(out.Data)
		if err != nil {
			return nil, fmt.Errorf("dbfs/read %s: %w", path, err)
		}
		buf.Write(data)
		if out.BytesRead == 0 {
			break
		}
		off += out.BytesRead
	}
	return buf.Bytes(), nil
}

// Delete removes a DBFS path, and what is below it when recursive (POST
// /api/2.0/dbfs/delete).
func (c *Client) Delete(ctx context.Context, path string, recursive bool) error {
	return c.call(ctx, http.MethodPost, "/api/2.0/dbfs/delete", nil, map[string]any{"path": path, "recursive": recursive}, nil)
}
