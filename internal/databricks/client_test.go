package databricks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/databricks"
	"github.com/paddock-ml/paddock/internal/databricks/databrickstest"
	"github.com/paddock-ml/paddock/internal/secret"
)

const token = "dapi-test-token"

// fake starts a fake workspace that fails the test on any request it did
// not recognise.
func fake(t *testing.T) (*databrickstest.FakeWorkspace, *databricks.Client) {
	t.Helper()
	f, err := databrickstest.Start(token, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f.PendingFor = 50 * time.Millisecond
	t.Cleanup(func() {
		f.Close()
		for _, r := range f.Refused() {
			t.Errorf("the fake workspace did not recognise %s", r)
		}
	})
	return f, databricks.New(f.URL, secret.New(token))
}

func apiErr(t *testing.T, err error) *databricks.Error {
	t.Helper()
	var e *databricks.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *databricks.Error", err, err)
	}
	return e
}

func TestAuth(t *testing.T) {
	f, _ := fake(t)
	ctx := t.Context()
	for _, tc := range []struct {
		token  string
		status int
	}{{"", http.StatusUnauthorized}, {"dapi-wrong", http.StatusForbidden}} {
		_, err := databricks.New(f.URL, secret.New(tc.token)).GetCluster(ctx, databrickstest.ClusterID)
		if e := apiErr(t, err); e.Status != tc.status || !databricks.IsAuth(err) || e.Message == "" {
			t.Errorf("token %q: %v (status %d)", tc.token, err, e.Status)
		}
	}
}

func TestClusters(t *testing.T) {
	_, c := fake(t)
	ctx := t.Context()
	cl, err := c.GetCluster(ctx, databrickstest.ClusterID)
	if err != nil || cl.State != "RUNNING" || cl.SparkVersion != databrickstest.SparkVersion {
		t.Fatalf("clusters/get: %+v %v", cl, err)
	}
	if _, err := c.GetCluster(ctx, "nope"); apiErr(t, err).Code != "INVALID_PARAMETER_VALUE" {
		t.Errorf("unknown cluster: %v", err)
	}
	if _, err := c.GetCluster(ctx, ""); !strings.Contains(apiErr(t, err).Message, "cluster_id") {
		t.Errorf("no cluster id: %v", err)
	}
	v, err := c.SparkVersions(ctx)
	if err != nil || len(v) != 1 || v[0] != databrickstest.SparkVersion {
		t.Errorf("spark-versions: %v %v", v, err)
	}
}

func TestDBFS(t *testing.T) {
	_, c := fake(t)
	ctx := t.Context()
	small := []byte("print('hello')\n")
	big := bytes.Repeat([]byte("0123456789abcdef"), (3*databricks.MaxBlock)/16+7) // three blocks and a bit
	if err := c.Mkdirs(ctx, "dbfs:/paddock/ws/a"); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"small.py": small, "big.bin": big, "empty": {}} {
		p := "dbfs:/paddock/ws/a/" + name
		if err := c.Put(ctx, p, data); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
		got, err := c.Read(ctx, p, int64(len(data)))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("read %s: %d bytes, %v; want %d", name, len(got), err, len(data))
		}
	}
	files, err := c.List(ctx, "dbfs:/paddock/ws/a")
	if err != nil || len(files) != 3 {
		t.Fatalf("list: %+v %v", files, err)
	}
	for _, fi := range files {
		if fi.Path == "/paddock/ws/a/big.bin" && fi.FileSize != int64(len(big)) {
			t.Errorf("list: %+v", fi)
		}
	}
	if _, err := c.List(ctx, "dbfs:/paddock/none"); !databricks.IsNotFound(err) {
		t.Errorf("list of a missing dir: %v", err)
	}
	if err := c.Put(ctx, "relative/x", small); apiErr(t, err).Code != "INVALID_PARAMETER_VALUE" {
		t.Errorf("relative path: %v", err)
	}
	if err := c.Delete(ctx, "dbfs:/paddock/ws", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(ctx, "dbfs:/paddock/ws"); !databricks.IsNotFound(err) {
		t.Errorf("after delete: %v", err)
	}
}

// submit uploads a script and submits it on the fake's cluster.
func submit(t *testing.T, c *databricks.Client, script string, mod func(*databricks.SubmitRun)) int64 {
	t.Helper()
	ctx := t.Context()
	if err := c.Put(ctx, "dbfs:/s/main.py", []byte(script)); err != nil {
		t.Fatal(err)
	}
	r := databricks.SubmitRun{RunName: "t", Tasks: []databricks.Task{{TaskKey: "paddock",
		SparkPythonTask: &databricks.SparkPythonTask{PythonFile: "dbfs:/s/main.py", Parameters: []string{"a b", "dbfs:/s"}}, ExistingClusterID: databrickstest.ClusterID}}}
	if mod != nil {
		mod(&r)
	}
	id, err := c.Submit(ctx, r)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return id
}

// wait polls a run until it ends and returns it, with every life-cycle
// state it was seen in.
func wait(t *testing.T, c *databricks.Client, id int64) (databricks.Run, []string) {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r, err := c.GetRun(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) == 0 || seen[len(seen)-1] != r.State.LifeCycleState {
			seen = append(seen, r.State.LifeCycleState)
		}
		if r.State.Ended() {
			return r, seen
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("run %d did not end", id)
	return databricks.Run{}, nil
}

func TestRuns(t *testing.T) {
	f, c := fake(t)
	ctx := t.Context()
	id := submit(t, c, "import os, sys\nprint('args', sys.argv[1:])\nprint('dir', os.path.isdir(sys.argv[2]))\n", nil)
	r, seen := wait(t, c, id)
	if r.State.ResultState != databricks.Success || len(r.Tasks) != 1 || strings.Join(seen, " ") != "PENDING RUNNING TERMINATED" {
		t.Fatalf("run: %+v, states %v", r, seen)
	}
	if _, err := c.GetOutput(ctx, id); err == nil || !strings.Contains(err.Error(), "multiple tasks") {
		t.Errorf("get-output of the multi-task run: %v", err)
	}
	out, err := c.GetOutput(ctx, r.Tasks[0].RunID)
	if err != nil || !strings.Contains(out.Logs, "args ['a b', ") || !strings.Contains(out.Logs, "dir True") || out.Error != "" {
		t.Errorf("output: %+v %v", out, err)
	}

	again := submit(t, c, "print(1)\n", func(r *databricks.SubmitRun) { r.IdempotencyToken = "tok-1" })
	if second := submit(t, c, "print(1)\n", func(r *databricks.SubmitRun) { r.IdempotencyToken = "tok-1" }); second != again {
		t.Errorf("the same idempotency token made runs %d and %d", again, second)
	}

	failing := submit(t, c, "import sys\nprint('before')\nraise ValueError('bad input')\n", nil)
	r, _ = wait(t, c, failing)
	out, _ = c.GetOutput(ctx, r.Tasks[0].RunID)
	if r.State.ResultState != databricks.Failed || out.Error != "ValueError: bad input" || !strings.Contains(out.ErrorTrace, "Traceback") || out.Logs != "before\n" {
		t.Errorf("failing run: %+v %+v", r.State, out)
	}

	slow := submit(t, c, "import time\nprint('started', flush=True)\ntime.sleep(60)\n", nil)
	for {
		if lc, _ := f.RunState(slow); lc == databricks.Running {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Cancel(ctx, slow); err != nil {
		t.Fatal(err)
	}
	r, seen = wait(t, c, slow)
	if r.State.ResultState != databricks.Canceled || seen[0] != databricks.Terminating && seen[0] != databricks.Terminated {
		t.Errorf("cancelled run: %+v %v", r.State, seen)
	}

	timeout := submit(t, c, "import time\ntime.sleep(60)\n", func(r *databricks.SubmitRun) { r.TimeoutSeconds = 1 })
	if r, _ = wait(t, c, timeout); r.State.ResultState != databricks.TimedOut {
		t.Errorf("timed out run: %+v", r.State)
	}
}

func TestSubmitRefusesBadShapes(t *testing.T) {
	_, c := fake(t)
	ctx := t.Context()
	if err := c.Put(ctx, "dbfs:/s/main.py", []byte("print(1)")); err != nil {
		t.Fatal(err)
	}
	task := func(mod func(*databricks.Task)) databricks.SubmitRun {
		tk := databricks.Task{TaskKey: "k", SparkPythonTask: &databricks.SparkPythonTask{PythonFile: "dbfs:/s/main.py"}, ExistingClusterID: databrickstest.ClusterID}
		mod(&tk)
		return databricks.SubmitRun{Tasks: []databricks.Task{tk}}
	}
	for _, tc := range []struct {
		name string
		run  databricks.SubmitRun
		want string
	}{
		{"no tasks", databricks.SubmitRun{}, "tasks"},
		{"no task key", task(func(t *databricks.Task) { t.TaskKey = "" }), "task_key"},
		{"no python file", task(func(t *databricks.Task) { t.SparkPythonTask.PythonFile = "" }), "python_file"},
		{"missing file", task(func(t *databricks.Task) { t.SparkPythonTask.PythonFile = "dbfs:/s/none.py" }), "does not exist"},
		{"no cluster", task(func(t *databricks.Task) { t.ExistingClusterID = "" }), "existing_cluster_id"},
		{"both clusters", task(func(t *databricks.Task) { t.NewCluster = json.RawMessage(`{}`) }), "Exactly one"},
		{"unknown cluster", task(func(t *databricks.Task) { t.ExistingClusterID = "x" }), "Cluster x does not exist"},
		{"spec without version", task(func(t *databricks.Task) {
			t.ExistingClusterID, t.NewCluster = "", json.RawMessage(`{"node_type_id":"n","num_workers":1}`)
		}), "new_cluster.spark_version"},
		{"spec without workers", task(func(t *databricks.Task) {
			t.ExistingClusterID, t.NewCluster = "", json.RawMessage(`{"node_type_id":"n","spark_version":"v"}`)
		}), "num_workers or autoscale"},
	} {
		_, err := c.Submit(ctx, tc.run)
		if e := apiErr(t, err); e.Status != http.StatusBadRequest || !strings.Contains(e.Message, tc.want) {
			t.Errorf("%s: %v; want 400 naming %q", tc.name, err, tc.want)
		}
	}
	tk := task(func(t *databricks.Task) {
		t.ExistingClusterID, t.NewCluster = "", json.RawMessage(`{"node_type_id":"n","spark_version":"v","num_workers":0}`)
	})
	if _, err := c.Submit(ctx, tk); err != nil {
		t.Errorf("a new-cluster run: %v", err)
	}
}

func TestFakeRefusesUnknownFieldsAndRoutes(t *testing.T) {
	f, err := databrickstest.Start(token, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	do := func(method, path, body string) int {
		req, _ := http.NewRequestWithContext(context.Background(), method, f.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := do("POST", "/api/2.0/dbfs/mkdirs", `{"path":"/x","colour":"red"}`); s != 400 {
		t.Errorf("unknown field: %d", s)
	}
	if s := do("GET", "/api/2.1/jobs/runs/submit", ``); s != 404 {
		t.Errorf("wrong method: %d", s)
	}
	if s := do("POST", "/api/2.1/jobs/run-now", `{}`); s != 404 {
		t.Errorf("unknown route: %d", s)
	}
	if r := f.Refused(); len(r) != 2 {
		t.Errorf("refused: %q", r)
	}
}
