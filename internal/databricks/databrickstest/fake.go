// Package databrickstest is a FAKE Databricks workspace for tests: an HTTP
// server on loopback that answers the calls package databricks makes, with
// the request shapes of the vendor's published API reference, and refuses
// everything else. It is not Databricks and runs no Spark.
//
// What it enforces: the Authorization header (Bearer and the one token it
// was made with: 401 without one, 403 with another, Databricks' error body
// {"error_code", "message"}); the method of each route; the required
// fields of each body (400 INVALID_PARAMETER_VALUE naming the field);
// unknown fields (400 as well); DBFS's 1 MB block limit; the run state
// machine PENDING → RUNNING → TERMINATED with a result state SUCCESS or
// FAILED (TIMEDOUT past timeout_seconds), or on runs/cancel TERMINATING →
// TERMINATED CANCELED; idempotency tokens; get-output only for a task's
// run_id. Any other request is answered 404 ENDPOINT_NOT_FOUND and kept in
// Refused, which tests check.
//
// What it fakes: a spark_python_task is run as `python3 FILE PARAMS...` on
// this machine, in the file's directory; its stdout becomes the run's logs
// and a nonzero exit FAILED with the stderr as error_trace. DBFS is a
// directory (Root); dbfs:/x and /dbfs/x in a task's parameters are
// rewritten to Root/x, standing in for the /dbfs mount of a real cluster.
package databrickstest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClusterID is the id of the one all-purpose cluster a FakeWorkspace has.
const ClusterID = "0101-120000-fake0001"

// SparkVersion is the one runtime version a FakeWorkspace offers.
const SparkVersion = "15.4.x-scala2.12"

// FakeWorkspace is a fake Databricks workspace (see the package comment).
type FakeWorkspace struct {
	// URL is where it serves, http://127.0.0.1:PORT.
	URL   string
	Token string
	// Root holds the fake DBFS.
	Root string
	// PendingFor is how long a submitted run stays PENDING (default 300 ms).
	PendingFor time.Duration

	srv *httptest.Server

	mu       sync.Mutex
	refused  []string
	runs     map[int64]*fakeRun
	byToken  map[string]int64
	handles  map[int64]*bytes.Buffer
	nextID   int64
	requests map[string]int
}

type fakeRun struct {
	id, taskID int64
	state      fakeState
	cancel     context.CancelFunc
	output     outputBody
}

type fakeState struct {
	LifeCycleState string `json:"life_cycle_state"`
	ResultState    string `json:"result_state,omitempty"`
	StateMessage   string `json:"state_message"`
}

type outputBody struct {
	Logs          string `json:"logs,omitempty"`
	LogsTruncated bool   `json:"logs_truncated"`
	Error         string `json:"error,omitempty"`
	ErrorTrace    string `json:"error_trace,omitempty"`
}

// Start starts a fake workspace that takes token, with DBFS in root, on a
// free loopback port; Close stops it and every run.
func Start(token, root string) (*FakeWorkspace, error) {
	f := &FakeWorkspace{Token: token, Root: root, PendingFor: 300 * time.Millisecond,
		runs: map[int64]*fakeRun{}, byToken: map[string]int64{}, handles: map[int64]*bytes.Buffer{}, nextID: 1000, requests: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Listener.Close()
	f.srv.Listener = l
	f.srv.Start()
	f.URL = f.srv.URL
	return f, nil
}

// Close stops the server and kills the runs' processes.
func (f *FakeWorkspace) Close() {
	f.mu.Lock()
	for _, r := range f.runs {
		if r.cancel != nil {
			r.cancel()
		}
	}
	f.mu.Unlock()
	f.srv.Close()
}

// Refused lists the requests the fake did not recognise, as "METHOD PATH:
// why". Requests refused for a wrong token or a bad field are answered as
// the workspace would and are not listed.
func (f *FakeWorkspace) Refused() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.refused)
}

// Requests counts the requests made to a route ("POST /api/2.1/jobs/runs/submit"),
// answered or not.
func (f *FakeWorkspace) Requests(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[route]
}

// RunState is the state of a run, as runs/get would say it.
func (f *FakeWorkspace) RunState(id int64) (lifeCycle, result string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.runs[id]; r != nil {
		return r.state.LifeCycleState, r.state.ResultState
	}
	return "", ""
}

// RunIDs lists the runs submitted, oldest first.
func (f *FakeWorkspace) RunIDs() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []int64
	for id := range f.runs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// apiError is a refusal in Databricks' shape.
type apiError struct {
	status int
	Code   string `json:"error_code"`
	Msg    string `json:"message"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Msg }

func invalid(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf(format, args...)}
}

func notExist(format string, args ...any) *apiError {
	return &apiError{http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf(format, args...)}
}

type route struct {
	method string
	fn     func(f *FakeWorkspace, r *http.Request) (any, error)
}

var routes = map[string]route{
	"/api/2.0/clusters/get":            {http.MethodGet, (*FakeWorkspace).clusterGet},
	"/api/2.0/clusters/spark-versions": {http.MethodGet, (*FakeWorkspace).sparkVersions},
	"/api/2.1/jobs/runs/submit":        {http.MethodPost, (*FakeWorkspace).submit},
	"/api/2.1/jobs/runs/get":           {http.MethodGet, (*FakeWorkspace).runGet},
	"/api/2.1/jobs/runs/get-output":    {http.MethodGet, (*FakeWorkspace).runOutput},
	"/api/2.1/jobs/runs/cancel":        {http.MethodPost, (*FakeWorkspace).runCancel},
	"/api/2.0/dbfs/put":                {http.MethodPost, (*FakeWorkspace).dbfsPut},
	"/api/2.0/dbfs/create":             {http.MethodPost, (*FakeWorkspace).dbfsCreate},
	"/api/2.0/dbfs/add-block":          {http.MethodPost, (*FakeWorkspace).dbfsAddBlock},
	"/api/2.0/dbfs/close":              {http.MethodPost, (*FakeWorkspace).dbfsClose},
	"/api/2.0/dbfs/mkdirs":             {http.MethodPost, (*FakeWorkspace).dbfsMkdirs},
	"/api/2.0/dbfs/list":               {http.MethodGet, (*FakeWorkspace).dbfsList},
	"/api/2.0/dbfs/read":               {http.MethodGet, (*FakeWorkspace).dbfsRead},
	"/api/2.0/dbfs/delete":             {http.MethodPost, (*FakeWorkspace).dbfsDelete},
}

func (f *FakeWorkspace) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests[r.Method+" "+r.URL.Path]++
	f.mu.Unlock()
	out, err := f.handle(r)
	w.Header().Set("Content-Type", "application/json")
	var ae *apiError
	if err != nil && !errors.As(err, &ae) {
		ae = &apiError{http.StatusInternalServerError, "INTERNAL_ERROR", err.Error()}
	}
	if ae != nil {
		w.WriteHeader(ae.status)
		json.NewEncoder(w).Encode(ae)
		return
	}
	json.NewEncoder(w).Encode(out)
}

func (f *FakeWorkspace) handle(r *http.Request) (any, error) {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	switch {
	case !ok || token == "":
		return nil, &apiError{http.StatusUnauthorized, "UNAUTHENTICATED", "Credential was not sent or was of an unsupported type for this API."}
	case token != f.Token:
		return nil, &apiError{http.StatusForbidden, "PERMISSION_DENIED", "Invalid access token."}
	}
	rt, ok := routes[r.URL.Path]
	if !ok || rt.method != r.Method {
		f.refuse(r, "not an endpoint this fake knows")
		return nil, &apiError{http.StatusNotFound, "ENDPOINT_NOT_FOUND", "No API found for '" + r.Method + " " + r.URL.Path + "'"}
	}
	if r.Method == http.MethodPost && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		f.refuse(r, "a body that is not application/json")
		return nil, invalid("the body must be JSON")
	}
	return rt.fn(f, r)
}

func (f *FakeWorkspace) refuse(r *http.Request, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refused = append(f.refused, r.Method+" "+r.URL.String()+": "+why)
}

// decode reads a JSON body strictly: an unknown field is refused, naming it.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid("Malformed request: %v", err)
	}
	return nil
}

// pathBody decodes a DBFS call's body into v, whose required path is *p,
// and returns the local file the path names.
func (f *FakeWorkspace) pathBody(r *http.Request, v any, p *string) (string, error) {
	if err := decode(r, v); err != nil {
		return "", err
	}
	if *p == "" {
		return "", invalid("Missing required field: path")
	}
	return f.local(*p)
}

// query reads required query parameters.
func query(r *http.Request, names ...string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		if out[i] = r.URL.Query().Get(n); out[i] == "" {
			return nil, invalid("Missing required field: %s", n)
		}
	}
	return out, nil
}

func queryRunID(r *http.Request) (int64, error) {
	q, err := query(r, "run_id")
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(q[0], 10, 64)
	if err != nil {
		return 0, invalid("run_id must be a number, not %q", q[0])
	}
	return id, nil
}

func (f *FakeWorkspace) clusterGet(r *http.Request) (any, error) {
	q, err := query(r, "cluster_id")
	if err != nil {
		return nil, err
	}
	if q[0] != ClusterID {
		return nil, invalid("Cluster %s does not exist", q[0])
	}
	return map[string]any{"cluster_id": ClusterID, "cluster_name": "fake-all-purpose", "state": "RUNNING",
		"spark_version": SparkVersion, "node_type_id": "Standard_DS3_v2", "num_workers": 2}, nil
}

func (f *FakeWorkspace) sparkVersions(*http.Request) (any, error) {
	return map[string]any{"versions": []map[string]string{{"key": SparkVersion, "name": "15.4 LTS (includes Apache Spark 3.5.0, Scala 2.12)"}}}, nil
}

type submitBody struct {
	RunName          string       `json:"run_name"`
	IdempotencyToken string       `json:"idempotency_token"`
	TimeoutSeconds   int64        `json:"timeout_seconds"`
	Tasks            []submitTask `json:"tasks"`
}

type submitTask struct {
	TaskKey         string `json:"task_key"`
	SparkPythonTask *struct {
		PythonFile string   `json:"python_file"`
		Parameters []string `json:"parameters"`
	} `json:"spark_python_task"`
	ExistingClusterID string           `json:"existing_cluster_id"`
	NewCluster        *json.RawMessage `json:"new_cluster"`
}

// newCluster is the part of a cluster spec the fake checks.
type newCluster struct {
	SparkVersion string          `json:"spark_version"`
	NodeTypeID   string          `json:"node_type_id"`
	NumWorkers   *int            `json:"num_workers"`
	Autoscale    json.RawMessage `json:"autoscale"`
}

func (f *FakeWorkspace) submit(r *http.Request) (any, error) {
	var b submitBody
	if err := decode(r, &b); err != nil {
		return nil, err
	}
	if len(b.Tasks) == 0 {
		return nil, invalid("Missing required field: tasks")
	}
	if len(b.Tasks) > 1 {
		f.refuse(r, "runs of more than one task")
		return nil, invalid("this fake runs one task per run")
	}
	if len(b.IdempotencyToken) > 64 {
		return nil, invalid("idempotency_token must be at most 64 characters")
	}
	t := b.Tasks[0]
	switch {
	case t.TaskKey == "":
		return nil, invalid("Missing required field: tasks[0].task_key")
	case t.SparkPythonTask == nil:
		f.refuse(r, "a task that is not a spark_python_task")
		return nil, invalid("Missing required field: tasks[0].spark_python_task")
	case t.SparkPythonTask.PythonFile == "":
		return nil, invalid("Missing required field: tasks[0].spark_python_task.python_file")
	case (t.ExistingClusterID == "") == (t.NewCluster == nil):
		return nil, invalid("Exactly one of tasks[0].existing_cluster_id and tasks[0].new_cluster must be given")
	case t.ExistingClusterID != "" && t.ExistingClusterID != ClusterID:
		return nil, invalid("Cluster %s does not exist", t.ExistingClusterID)
	}
	if t.NewCluster != nil {
		var nc newCluster
		if err := json.Unmarshal(*t.NewCluster, &nc); err != nil {
			return nil, invalid("tasks[0].new_cluster: %v", err)
		}
		switch {
		case nc.SparkVersion == "":
			return nil, invalid("Missing required field: tasks[0].new_cluster.spark_version")
		case nc.NodeTypeID == "":
			return nil, invalid("Missing required field: tasks[0].new_cluster.node_type_id")
		case nc.NumWorkers == nil && len(nc.Autoscale) == 0:
			return nil, invalid("Missing required field: tasks[0].new_cluster.num_workers or autoscale")
		}
	}
	file, err := f.local(t.SparkPythonTask.PythonFile)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(file); err != nil || st.IsDir() {
		return nil, invalid("python_file %s does not exist", t.SparkPythonTask.PythonFile)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.byToken[b.IdempotencyToken]; ok && b.IdempotencyToken != "" {
		return map[string]int64{"run_id": id}, nil
	}
	f.nextID += 2
	run := &fakeRun{id: f.nextID, taskID: f.nextID + 1, state: fakeState{LifeCycleState: "PENDING", StateMessage: "Waiting for cluster"}}
	f.runs[run.id] = run
	if b.IdempotencyToken != "" {
		f.byToken[b.IdempotencyToken] = run.id
	}
	ctx, cancel := context.WithCancel(context.Background())
	if b.TimeoutSeconds > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), time.Duration(b.TimeoutSeconds)*time.Second)
	}
	run.cancel = cancel
	params := make([]string, len(t.SparkPythonTask.Parameters))
	for i, p := range t.SparkPythonTask.Parameters {
		params[i] = f.mount(p)
	}
	go f.execute(ctx, run, file, params)
	return map[string]int64{"run_id": run.id}, nil
}

// transitions are the life-cycle moves a run may make.
var transitions = map[string][]string{
	"PENDING":     {"RUNNING", "TERMINATING"},
	"RUNNING":     {"TERMINATING", "TERMINATED"},
	"TERMINATING": {"TERMINATED"},
}

// move changes a run's state; a move the state machine does not allow is a
// bug of the fake, and panics.
func (f *FakeWorkspace) move(run *fakeRun, to fakeState) {
	if !slices.Contains(transitions[run.state.LifeCycleState], to.LifeCycleState) {
		panic(fmt.Sprintf("databrickstest: run %d cannot go from %s to %s", run.id, run.state.LifeCycleState, to.LifeCycleState))
	}
	run.state = to
}

// execute plays a run: PENDING for PendingFor, RUNNING while python3 runs
// the file, then TERMINATED with its result (or CANCELED by runs/cancel).
func (f *FakeWorkspace) execute(ctx context.Context, run *fakeRun, file string, params []string) {
	select {
	case <-ctx.Done():
	case <-time.After(f.PendingFor):
	}
	f.mu.Lock()
	if run.state.LifeCycleState != "PENDING" {
		f.mu.Unlock()
		return // cancelled while pending
	}
	f.move(run, fakeState{LifeCycleState: "RUNNING", StateMessage: "In run"})
	f.mu.Unlock()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "python3", append([]string{file}, params...)...)
	cmd.Dir = filepath.Dir(file)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "PYTHONUNBUFFERED=1", "LANG=C.UTF-8"}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	f.mu.Lock()
	defer f.mu.Unlock()
	run.output.Logs = stdout.String()
	if run.state.LifeCycleState == "TERMINATING" {
		f.move(run, fakeState{LifeCycleState: "TERMINATED", ResultState: "CANCELED", StateMessage: "Run cancelled."})
		return
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		f.move(run, fakeState{LifeCycleState: "TERMINATED", ResultState: "TIMEDOUT", StateMessage: "Run timed out."})
	case err != nil:
		trace := strings.TrimSpace(stderr.String())
		run.output.ErrorTrace = trace
		lines := strings.Split(trace, "\n")
		run.output.Error = lines[len(lines)-1]
		if run.output.Error == "" {
			run.output.Error = err.Error()
		}
		f.move(run, fakeState{LifeCycleState: "TERMINATED", ResultState: "FAILED", StateMessage: "Workload failed, see run output for details"})
	default:
		f.move(run, fakeState{LifeCycleState: "TERMINATED", ResultState: "SUCCESS"})
	}
}

func (f *FakeWorkspace) runGet(r *http.Request) (any, error) {
	id, err := queryRunID(r)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	run := f.runs[id]
	if run == nil {
		return nil, invalid("Run %d does not exist.", id)
	}
	return map[string]any{"run_id": run.id, "state": run.state, "run_page_url": f.URL + "/#job/runs/" + strconv.FormatInt(run.id, 10),
		"format": "MULTI_TASK", "tasks": []map[string]any{{"run_id": run.taskID, "task_key": "paddock", "state": run.state}}}, nil
}

func (f *FakeWorkspace) runOutput(r *http.Request) (any, error) {
	id, err := queryRunID(r)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.runs[id] != nil {
		return nil, invalid("Retrieving the output of runs with multiple tasks is not supported. Please retrieve the output of each individual task run instead.")
	}
	for _, run := range f.runs {
		if run.taskID == id {
			out := run.output
			return map[string]any{"logs": out.Logs, "logs_truncated": out.LogsTruncated, "error": out.Error, "error_trace": out.ErrorTrace,
				"metadata": map[string]any{"run_id": run.taskID, "state": run.state}}, nil
		}
	}
	return nil, invalid("Run %d does not exist.", id)
}

func (f *FakeWorkspace) runCancel(r *http.Request) (any, error) {
	var b struct {
		RunID int64 `json:"run_id"`
	}
	if err := decode(r, &b); err != nil {
		return nil, err
	}
	if b.RunID == 0 {
		return nil, invalid("Missing required field: run_id")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	run := f.runs[b.RunID]
	if run == nil {
		return nil, invalid("Run %d does not exist.", b.RunID)
	}
	switch run.state.LifeCycleState {
	case "PENDING", "RUNNING":
		pending := run.state.LifeCycleState == "PENDING"
		f.move(run, fakeState{LifeCycleState: "TERMINATING", StateMessage: "Cancelling"})
		run.cancel()
		if pending { // no process to wait for
			f.move(run, fakeState{LifeCycleState: "TERMINATED", ResultState: "CANCELED", StateMessage: "Run cancelled."})
		}
	}
	return map[string]any{}, nil
}

// local maps a DBFS path (dbfs:/x or /x) to the file under Root.
func (f *FakeWorkspace) local(p string) (string, error) {
	rest, ok := strings.CutPrefix(p, "dbfs:")
	if !strings.HasPrefix(rest, "/") {
		return "", invalid("Path must be absolute: %s", p)
	}
	if !ok && strings.HasPrefix(rest, "/dbfs/") {
		return "", invalid("Path %s: DBFS paths are dbfs:/x or /x, not the /dbfs mount", p)
	}
	clean := path.Clean(rest)
	if clean != rest && clean+"/" != rest {
		return "", invalid("Path %s is not canonical", p)
	}
	return filepath.Join(f.Root, filepath.FromSlash(clean)), nil
}

// mount rewrites a task parameter naming DBFS (dbfs:/x, /dbfs/x) to the
// local file, as the /dbfs mount of a cluster would show it.
func (f *FakeWorkspace) mount(p string) string {
	for _, prefix := range []string{"dbfs:/", "/dbfs/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			return filepath.Join(f.Root, filepath.FromSlash(path.Clean("/"+rest)))
		}
	}
	return p
}

func decodeBlock(field, s string) ([]byte, error) {
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, invalid("%s must be base64: %v", field, err)
	}
	if len(data) > 1<<20 {
		return nil, &apiError{http.StatusBadRequest, "MAX_BLOCK_SIZE_EXCEEDED", "The block of data exceeds the 1 MB limit."}
	}
	return data, nil
}

func (f *FakeWorkspace) dbfsPut(r *http.Request) (any, error) {
	var b struct {
		Path      string  `json:"path"`
		Contents  *string `json:"contents"`
		Overwrite bool    `json:"overwrite"`
	}
	file, err := f.pathBody(r, &b, &b.Path)
	if err != nil {
		return nil, err
	}
	if b.Contents == nil {
		f.refuse(r, "a put without contents (a multipart upload)")
		return nil, invalid("Missing required field: contents")
	}
	data, err := decodeBlock("contents", *b.Contents)
	if err != nil {
		return nil, err
	}
	return map[string]any{}, f.write(file, b.Path, data, b.Overwrite)
}

func (f *FakeWorkspace) write(file, p string, data []byte, overwrite bool) error {
	if _, err := os.Stat(file); err == nil && !overwrite {
		return &apiError{http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS", "A file or directory already exists at the input path " + p + "."}
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, data, 0o644)
}

func (f *FakeWorkspace) dbfsCreate(r *http.Request) (any, error) {
	var b struct {
		Path      string `json:"path"`
		Overwrite bool   `json:"overwrite"`
	}
	file, err := f.pathBody(r, &b, &b.Path)
	if err != nil {
		return nil, err
	}
	if err := f.write(file, b.Path, nil, b.Overwrite); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.handles[f.nextID] = &bytes.Buffer{}
	f.handles[f.nextID].WriteString(file + "\x00")
	return map[string]int64{"handle": f.nextID}, nil
}

func (f *FakeWorkspace) handle64(h int64) (*bytes.Buffer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.handles[h]; b != nil {
		return b, nil
	}
	return nil, notExist("There is no handle %d.", h)
}

func (f *FakeWorkspace) dbfsAddBlock(r *http.Request) (any, error) {
	var b struct {
		Handle int64   `json:"handle"`
		Data   *string `json:"data"`
	}
	if err := decode(r, &b); err != nil {
		return nil, err
	}
	if b.Data == nil {
		return nil, invalid("Missing required field: data")
	}
	buf, err := f.handle64(b.Handle)
	if err != nil {
		return nil, err
	}
	data, err := decodeBlock("data", *b.Data)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	buf.Write(data)
	f.mu.Unlock()
	return map[string]any{}, nil
}

func (f *FakeWorkspace) dbfsClose(r *http.Request) (any, error) {
	var b struct {
		Handle int64 `json:"handle"`
	}
	if err := decode(r, &b); err != nil {
		return nil, err
	}
	buf, err := f.handle64(b.Handle)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	delete(f.handles, b.Handle)
	f.mu.Unlock()
	file, data, _ := bytes.Cut(buf.Bytes(), []byte{0})
	return map[string]any{}, os.WriteFile(string(file), data, 0o644)
}

func (f *FakeWorkspace) dbfsMkdirs(r *http.Request) (any, error) {
	var b struct {
		Path string `json:"path"`
	}
	dir, err := f.pathBody(r, &b, &b.Path)
	if err != nil {
		return nil, err
	}
	return map[string]any{}, os.MkdirAll(dir, 0o755)
}

func (f *FakeWorkspace) dbfsList(r *http.Request) (any, error) {
	q, err := query(r, "path")
	if err != nil {
		return nil, err
	}
	dir, err := f.local(q[0])
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, notExist("No file or directory exists on path %s.", q[0])
	}
	p := strings.TrimPrefix(q[0], "dbfs:")
	if !st.IsDir() {
		return map[string]any{"files": []map[string]any{{"path": p, "is_dir": false, "file_size": st.Size()}}}, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := []map[string]any{}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			continue
		}
		size := info.Size()
		if e.IsDir() {
			size = 0
		}
		files = append(files, map[string]any{"path": path.Join(p, e.Name()), "is_dir": e.IsDir(), "file_size": size})
	}
	return map[string]any{"files": files}, nil
}

func (f *FakeWorkspace) dbfsRead(r *http.Request) (any, error) {
	q, err := query(r, "path")
	if err != nil {
		return nil, err
	}
	file, err := f.local(q[0])
	if err != nil {
		return nil, err
	}
	offset, _ := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	length := int64(1 << 20)
	if l := r.URL.Query().Get("length"); l != "" {
		if length, err = strconv.ParseInt(l, 10, 64); err != nil || length < 0 {
			return nil, invalid("length must be a number of bytes, not %q", l)
		}
	}
	if length > 1<<20 {
		return nil, &apiError{http.StatusBadRequest, "MAX_READ_SIZE_EXCEEDED", "Cannot read more than 1 MB at a time."}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, notExist("No file exists at %s.", q[0])
	}
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	data = data[offset:min(int64(len(data)), offset+length)]
	return map[string]any{"bytes_read": len(data), "data": base64.StdEncoding.EncodeToString(data)}, nil
}

func (f *FakeWorkspace) dbfsDelete(r *http.Request) (any, error) {
	var b struct {
		Path      string `json:"path"`
		Recursive bool   `json:"recursive"`
	}
	file, err := f.pathBody(r, &b, &b.Path)
	if err != nil {
		return nil, err
	}
	if b.Recursive {
		return map[string]any{}, os.RemoveAll(file)
	}
	if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
		return nil, &apiError{http.StatusBadRequest, "IO_ERROR", "The directory is not empty; use recursive."}
	}
	return map[string]any{}, nil
}
