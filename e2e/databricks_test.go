package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/databricks/databrickstest"
	"github.com/paddock-ml/paddock/internal/testenv"
)

const dbxToken = "dapi-e2e-0123456789abcdef"

// fakeDatabricks starts the FAKE Databricks workspace of package
// databrickstest (no real workspace is reachable from CI): it enforces the
// request shapes of the vendor's API reference and runs spark_python_tasks
// with the local python3. The test fails on any request it did not
// recognise.
func fakeDatabricks(t *testing.T) *databrickstest.FakeWorkspace {
	t.Helper()
	f, err := databrickstest.Start(dbxToken, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		for _, r := range f.Refused() {
			t.Errorf("the fake Databricks workspace did not recognise %s", r)
		}
	})
	return f
}

const dbxMain = `import os, sys
import helper
n = int(sys.argv[1])
for i in range(1, n + 1):
    print("line %d of %d" % (i, n))
os.makedirs("outputs/deep", exist_ok=True)
with open("outputs/result.txt", "w") as f:
    f.write(helper.greet("databricks") + "\n")
with open("outputs/deep/n.txt", "w") as f:
    f.write(str(n))
`

// A Databricks workspace (the fake) attached with a token: a wrong token
// stores nothing; a script's printed lines are the run's log and the files
// it writes under ./outputs come back; a failing script fails the run with
// its error in the log; cancel cancels the Databricks run; a server killed
// mid-run resumes polling the run it had submitted, without submitting it
// again; the token shows nowhere.
func TestDatabricksTarget(t *testing.T) {
	t.Parallel()
	f := fakeDatabricks(t)
	e := newEnv(t)
	srv := e.up()
	tokenFile := writeFile(t, e.home, "token.txt", dbxToken+"\n")
	wrongFile := writeFile(t, e.home, "wrong.txt", "dapi-wrong-secret\n")
	attach := []string{"compute", "attach", "databricks", "dbx1", "--workspace-url", f.URL}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--access-token-file", wrongFile, "--cluster-id", databrickstest.ClusterID}, 2, "refused the access token"},
		{[]string{"--access-token-file", tokenFile, "--cluster-id", "0000-nope"}, 2, "Cluster 0000-nope does not exist"},
		{[]string{"--access-token-file", tokenFile}, 2, "give cluster_id"},
		{[]string{"--cluster-id", databrickstest.ClusterID}, 2, "access_token is required"},
	} {
		r := e.run(append(attach, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 || strings.Contains(r.stderr, "dapi-wrong-secret") {
			t.Errorf("attach %v: exit %d %q; want %d and one line with %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if r := e.run("compute", "attach", "databricks", "dbx1", "--workspace-url", "http://dbx.example", "--access-token-file", tokenFile, "--cluster-id", "c"); r.code != 2 || !strings.Contains(r.stderr, "must use https") {
		t.Errorf("attach over plain http: exit %d %q", r.code, r.stderr)
	}
	if n := len(decodeJSON[[]api.Compute](t, e.ok("compute", "list", "-o", "json"))); n != 1 {
		t.Fatalf("failed attaches left %d targets", n)
	}

	c := decodeJSON[api.Compute](t, e.ok(append(attach, "--access-token-file", tokenFile, "--cluster-id", databrickstest.ClusterID, "-o", "json")...))
	var st struct {
		Reachable    bool   `json:"reachable"`
		ClusterState string `json:"cluster_state"`
	}
	jsonInto(t, c.Status, &st)
	if c.ProvisioningState != api.StateSucceeded || !st.Reachable || st.ClusterState != "RUNNING" {
		t.Fatalf("attached: %s %s", c.ProvisioningState, c.Status)
	}
	if list := e.ok("compute", "list"); !strings.Contains(list, "dbx1") || !strings.Contains(list, "databricks") {
		t.Errorf("compute list does not show the databricks target:\n%s", list)
	}

	src := filepath.Join(e.home, "dbx-src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "main.py", dbxMain)
	writeFile(t, src, "helper.py", "def greet(who):\n    return 'hello from ' + who\n")
	writeFile(t, src, "fail.py", "print('about to fail')\nraise ValueError('bad input on purpose')\n")
	writeFile(t, src, "sleep.py", "import sys, time\nprint('sleeping', flush=True)\ntime.sleep(float(sys.argv[1]))\nprint('woke up')\n")
	if r := e.run("run", "submit", "--compute", "dbx1", "--source", src, "--", "sh", "-c", "python3 main.py"); r.code != 2 || !strings.Contains(r.stderr, "a Python file of the run's source") {
		t.Errorf("a shell command on a databricks target: exit %d %q", r.code, r.stderr)
	}

	if r := e.run("run", "submit", "--compute", "dbx1", "--source", src, "--gpus", "1", "--", "main.py"); r.code != 2 || !strings.Contains(r.stderr, "GPUs and memory are the Databricks cluster's") {
		t.Errorf("a run asking for a GPU: exit %d %q", r.code, r.stderr)
	}
	r := e.runWithin(2*time.Minute, "run", "submit", "--compute", "dbx1", "--source", src, "--stream", "--", "python3", "main.py", "5")
	if r.code != 0 || !strings.Contains(r.stdout, "line 1 of 5") || !strings.Contains(r.stdout, "line 5 of 5") {
		t.Fatalf("run: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	runs := decodeJSON[[]api.Run](t, e.ok("run", "list", "-o", "json"))
	ok := e.show(runs[0].ID)
	if ok.Status != api.RunCompleted || ok.ExitCode == nil || *ok.ExitCode != 0 {
		t.Errorf("the run: %s exit %v", ok.Status, ok.ExitCode)
	}
	dl := filepath.Join(e.home, "dl")
	e.ok("run", "download", ok.ID, "--to", dl)
	if data, _ := os.ReadFile(filepath.Join(dl, "result.txt")); string(data) != "hello from databricks\n" {
		t.Errorf("outputs/result.txt: %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(dl, "deep", "n.txt")); string(data) != "5" {
		t.Errorf("outputs/deep/n.txt: %q", data)
	}
	if logs := e.run("run", "logs", ok.ID); !strings.Contains(logs.stderr, "[paddock] Databricks run ") {
		t.Errorf("the log does not name the Databricks run:\n%s", logs.stderr)
	}

	r = e.runWithin(2*time.Minute, "run", "submit", "--compute", "dbx1", "--source", src, "--stream", "--", "fail.py")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "about to fail") || !strings.Contains(r.stdout+r.stderr, "ValueError: bad input on purpose") {
		t.Errorf("failing run: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	runs = decodeJSON[[]api.Run](t, e.ok("run", "list", "-o", "json"))
	if failed := e.show(runs[0].ID); failed.Status != api.RunFailed || !strings.Contains(failed.Error, "FAILED") {
		t.Errorf("failing run: %s %q", failed.Status, failed.Error)
	}

	// Cancel: the Databricks run is cancelled and ends CANCELED.
	before := len(f.RunIDs())
	id := e.submit2("dbx1", "--source", src, "--", "sleep.py", "120")
	dbxRun := waitDatabricksRun(t, f, before, "RUNNING")
	eventually(t, 30*time.Second, "the run to be Running", func() bool { return e.show(id).Status == api.RunRunning })
	e.ok("run", "cancel", id)
	eventually(t, 30*time.Second, "the run to be Canceled", func() bool { return e.show(id).Status == api.RunCanceled })
	if lc, res := f.RunState(dbxRun); lc != "TERMINATED" || res != "CANCELED" {
		t.Errorf("the Databricks run after cancel: %s %s", lc, res)
	}

	// The server dies mid-run: the restarted one resumes polling the same
	// Databricks run, which is not submitted again.
	before = len(f.RunIDs())
	id = e.submit2("dbx1", "--source", src, "--", "sleep.py", "4")
	waitDatabricksRun(t, f, before, "RUNNING")
	srv.kill()
	srv = e.up()
	run := e.waitRun(id)
	if run.Status != api.RunCompleted || len(f.RunIDs()) != before+1 || f.Requests("POST /api/2.1/jobs/runs/submit") != before+1 {
		t.Errorf("after the restart: %s; %d Databricks runs, %d submits; want %d", run.Status, len(f.RunIDs()), f.Requests("POST /api/2.1/jobs/runs/submit"), before+1)
	}
	if logs := e.ok("run", "logs", id); !strings.Contains(logs, "sleeping") || !strings.Contains(logs, "woke up") {
		t.Errorf("the resumed run's log:\n%s", logs)
	}

	// The token never shows: not in the target, the runs' logs or the
	// server's log.
	shown := []string{e.ok("compute", "show", "dbx1", "-o", "json"), e.ok("compute", "show", "dbx1"), srv.Logs()}
	for _, r := range decodeJSON[[]api.Run](t, e.ok("run", "list", "-o", "json")) {
		logs := e.run("run", "logs", r.ID)
		shown = append(shown, logs.stdout+logs.stderr)
	}
	for _, out := range shown {
		if strings.Contains(out, dbxToken) || strings.Contains(out, "dapi-wrong-secret") {
			t.Fatalf("the access token leaked:\n%s", out)
		}
	}
	var shownProps map[string]any
	json.Unmarshal(decodeJSON[api.Compute](t, shown[0]).Properties, &shownProps)
	if _, has := shownProps["access_token"]; has {
		t.Errorf("compute show returns access_token: %v", shownProps)
	}

	// A target deleted with --force cancels its runs, in Databricks too.
	before = len(f.RunIDs())
	id = e.submit2("dbx1", "--source", src, "--", "sleep.py", "120")
	dbxRun = waitDatabricksRun(t, f, before, "RUNNING")
	if r := e.run("compute", "detach", "dbx1"); r.code != 4 || !strings.Contains(r.stderr, "active runs") {
		t.Errorf("detach with a run in flight: exit %d %q", r.code, r.stderr)
	}
	e.ok("compute", "delete", "dbx1", "--force")
	eventually(t, 30*time.Second, "the Databricks run to be cancelled", func() bool {
		lc, res := f.RunState(dbxRun)
		return lc == "TERMINATED" && res == "CANCELED"
	})
	if run := e.show(id); run.Status != api.RunCanceled {
		t.Errorf("the run of the deleted target: %s %+v", run.Status, run.Attempts)
	}
	eventually(t, 10*time.Second, "the node's state file to go", func() bool {
		files, _ := filepath.Glob(filepath.Join(e.dataDir, "databricks", "*.json"))
		return len(files) == 0
	})
}

// waitDatabricksRun waits for the fake to hold more than before runs, the
// newest in life-cycle state lc, and returns its id.
func waitDatabricksRun(t *testing.T, f *databrickstest.FakeWorkspace, before int, lc string) int64 {
	t.Helper()
	var id int64
	eventually(t, time.Minute, fmt.Sprintf("a Databricks run %s", lc), func() bool {
		ids := f.RunIDs()
		if len(ids) <= before {
			return false
		}
		id = ids[len(ids)-1]
		state, _ := f.RunState(id)
		return state == lc
	})
	return id
}

// Two replicas on one PostgreSQL sharing a data dir (as docs/ha.md asks);
// the leader is killed with SIGKILL while a Databricks run is RUNNING.
// The new leader starts the target's agent again from the shared data
// dir, resumes polling the same Databricks run (not submitted again) and
// the run completes with its whole log.
func TestDatabricksFailover(t *testing.T) {
	dsn := testenv.Postgres(t)
	f := fakeDatabricks(t)
	e := newEnv(t)
	r1 := replicaUp(e, dsn)
	eventually(t, 20*time.Second, "the first replica to lead", func() bool { return strings.Contains(r1.Logs(), "this server leads") })
	tokenFile := writeFile(t, e.home, "token.txt", dbxToken+"\n")
	e.ok("compute", "attach", "databricks", "dbx1", "--workspace-url", f.URL, "--access-token-file", tokenFile, "--cluster-id", databrickstest.ClusterID)
	r2 := replicaUp(e, dsn)
	src := filepath.Join(e.home, "dbx-src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "sleep.py", "import sys, time\nprint('sleeping', flush=True)\ntime.sleep(float(sys.argv[1]))\nprint('woke up')\n")

	c := api.NewClient(r1.url+","+r2.url, adminToken(t, e), "default")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := len(f.RunIDs())
	id := e.submit2("dbx1", "--source", src, "--", "sleep.py", "5")
	waitDatabricksRun(t, f, before, "RUNNING")
	r1.kill()
	eventually(t, 20*time.Second, "the follower to lead", func() bool { return strings.Contains(r2.Logs(), "this server leads") })
	run, err := c.WaitRun(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != api.RunCompleted || len(run.Attempts) != 1 || f.Requests("POST /api/2.1/jobs/runs/submit") != before+1 {
		t.Errorf("after the failover: %s in %d attempts (%s); %d Databricks submits, want 1 attempt and %d", run.Status, len(run.Attempts), run.Error,
			f.Requests("POST /api/2.1/jobs/runs/submit"), before+1)
	}
	var lines []api.LogLine
	if err := c.FollowLogs(ctx, id, 0, false, func(l api.LogLine) error { lines = append(lines, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(texts(lines), "\n"); !strings.Contains(got, "sleeping") || !strings.Contains(got, "woke up") {
		t.Errorf("the run's log after the failover:\n%s", got)
	}
}
