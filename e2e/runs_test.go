package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

func (e *env) runJSON(args ...string) api.Run {
	e.t.Helper()
	return decodeJSON[api.Run](e.t.(*testing.T), e.ok(append([]string{"-o", "json"}, args...)...))
}

func (e *env) show(id string) api.Run { return e.runJSON("run", "show", id) }

func (e *env) submit(args ...string) string {
	e.t.Helper()
	return e.runJSON(append([]string{"run", "submit", "--compute", "local"}, args...)...).ID
}

func (e *env) waitRun(id string) api.Run {
	e.t.Helper()
	r := e.run("run", "wait", id, "-o", "json")
	return decodeJSON[api.Run](e.t.(*testing.T), r.stdout)
}

// restartMidRun kills srv while run id runs (its command prints "before"
// and, a few seconds later, "after"), starts the server again with up's
// flags and checks that the run completes in its first attempt with its
// whole log: nothing was lost across the restart. It returns the new
// server.
func (e *env) restartMidRun(srv *server, id string, up ...string) *server {
	e.t.Helper()
	t := e.t.(*testing.T)
	srv.kill()
	srv = e.up(up...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(srv.Logs())
		}
	})
	r := e.waitRun(id)
	if r.Status != api.RunCompleted || len(r.Attempts) != 1 {
		t.Fatalf("after the restart: %s in %d attempts %+v", r.Status, len(r.Attempts), r.Attempts)
	}
	if logs := e.ok("run", "logs", id); !strings.Contains(logs, "before") || !strings.Contains(logs, "after") {
		t.Errorf("the run's log after the restart:\n%s", logs)
	}
	return srv
}

// pidsWith lists live processes whose command line contains marker.
func pidsWith(marker string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(data), marker) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue // a zombie is dead
		}
		out = append(out, p)
	}
	return out
}

const trainPy = `import json, os, sys, urllib.request
print("files", " ".join(sorted(os.path.relpath(os.path.join(d, f)) for d, _, fs in os.walk(".") for f in fs)))
print("epoch 1 loss 0.5")
print("warming up", file=sys.stderr)
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as f:
    f.write("weights v1")
with open("outputs/token.txt", "w") as f:
    f.write(os.environ["PADDOCK_RUN_TOKEN"])
url = os.environ["PADDOCK_API_URL"] + "/api/v1/workspaces/default/runs/" + os.environ["PADDOCK_RUN_ID"] + "/metrics"
req = urllib.request.Request(url, data=json.dumps({"name": "accuracy", "value": 0.93, "step": 3}).encode(),
    headers={"Authorization": "Bearer " + os.environ["PADDOCK_RUN_TOKEN"], "Content-Type": "application/json"})
print("metric posted", urllib.request.urlopen(req).status)
print("data", open("data.txt").read().strip())
`

// The first scenario: a script that prints, writes
// outputs/model.txt and posts a metric; all three are read back.
func TestRunPrintsWritesOutputsAndPostsMetric(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up()
	src := filepath.Join(e.home, "src")
	os.MkdirAll(filepath.Join(src, "checkpoints"), 0o755)
	os.MkdirAll(filepath.Join(src, "notes"), 0o755)
	writeFile(t, src, "train.py", trainPy)
	writeFile(t, src, "data.txt", "42\n")
	writeFile(t, src, ".paddockignore", "checkpoints/\n*.log\n")
	writeFile(t, filepath.Join(src, "checkpoints"), "big.ckpt", "ignored")
	writeFile(t, src, "debug.log", "ignored")
	writeFile(t, filepath.Join(src, "notes"), "plan.txt", "kept")

	r := e.run("run", "submit", "--compute", "local", "--source", src, "--stream", "--", "python3", "train.py")
	if r.code != 0 {
		t.Fatalf("submit --stream: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"epoch 1 loss 0.5", "metric posted 201", "data 42"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("streamed stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "warming up") {
		t.Errorf("streamed stderr lacks the script's stderr:\n%s", r.stderr)
	}
	runs := decodeJSON[[]api.Run](t, e.ok("run", "list", "-o", "json"))
	if len(runs) != 1 {
		t.Fatalf("%d runs", len(runs))
	}
	run := e.show(runs[0].ID)
	if run.Status != api.RunCompleted || run.ExitCode == nil || *run.ExitCode != 0 || run.StartedAt == nil || run.EndedAt == nil {
		t.Fatalf("run: %+v", run)
	}
	if len(run.Attempts) != 1 || run.Attempts[0].Node != "local-0" || run.Attempts[0].StartedAt == nil || run.Attempts[0].EndedAt == nil {
		t.Errorf("attempts: %+v", run.Attempts)
	}
	if m := run.Metrics["accuracy"]; m.Value != 0.93 || m.Step != 3 {
		t.Errorf("metrics: %+v", run.Metrics)
	}
	ms := decodeJSON[[]api.Metric](t, e.ok("run", "metrics", run.ID, "-o", "json"))
	if len(ms) != 1 || ms[0].Name != "accuracy" {
		t.Errorf("run metrics: %+v", ms)
	}
	dl := filepath.Join(e.home, "dl")
	e.ok("run", "download", run.ID, "--to", dl)
	if data, err := os.ReadFile(filepath.Join(dl, "model.txt")); err != nil || string(data) != "weights v1" {
		t.Errorf("downloaded model.txt: %q, %v", data, err)
	}
	logs := e.ok("run", "logs", run.ID, "-o", "json")
	var lines []api.LogLine
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		lines = append(lines, decodeJSON[api.LogLine](t, l))
	}
	var stdout []string
	for _, l := range lines {
		if l.Stream == "stdout" {
			stdout = append(stdout, l.Text)
		}
	}
	// The run saw its source without what .paddockignore excludes.
	const files = "files .paddockignore data.txt notes/plan.txt train.py"
	if len(lines) != 5 || strings.Join(stdout, "|") != files+"|epoch 1 loss 0.5|metric posted 201|data 42" {
		t.Errorf("log lines: %+v\nwant stdout %q, then the script's lines", lines, files)
	}
	// The run token worked while the run was active; now it has expired.
	token, _ := os.ReadFile(filepath.Join(dl, "token.txt"))
	body := strings.NewReader(`{"name":"late","value":1}`)
	req, _ := http.NewRequest(http.MethodPost, s.url+"/api/v1/workspaces/default/runs/"+run.ID+"/metrics", body)
	req.Header.Set("Authorization", "Bearer "+string(token))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("metric with an expired run token: HTTP %d, want 401", resp.StatusCode)
	}
	// A run token never reads or lists anything.
	if code, _ := httpGet(t, s.url+"/api/v1/workspaces/default/runs", string(token)); code != http.StatusForbidden {
		t.Errorf("listing runs with a run token: HTTP %d, want 403", code)
	}
}

func TestFailingScriptEndsFailedWithItsExitCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	r := e.run("run", "submit", "--compute", "local", "--stream", "--", "sh", "-c", "echo before; mkdir outputs; echo partial > outputs/checkpoint.txt; exit 3")
	if r.code != 3 || !strings.Contains(r.stdout, "before") || !strings.Contains(r.stderr, "exited with code 3") {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	runs := decodeJSON[[]api.Run](t, e.ok("run", "list", "-o", "json"))
	run := runs[0]
	if run.Status != api.RunFailed || run.ExitCode == nil || *run.ExitCode != 3 || run.Attempts[0].Reason != "NonZeroExit" {
		t.Fatalf("run: %+v", run)
	}
	if len(run.Outputs) != 1 || run.Outputs[0].Path != "checkpoint.txt" {
		t.Errorf("outputs of a failed run were not kept: %+v", run.Outputs)
	}
	if w := e.run("run", "wait", run.ID); w.code != 3 {
		t.Errorf("run wait exited %d, want 3", w.code)
	}
	id := e.submit("--", "no-such-command-xyz")
	if run := e.waitRun(id); run.Status != api.RunFailed || run.ExitCode == nil || *run.ExitCode != 127 || !strings.Contains(run.Error, "no-such-command-xyz") {
		t.Errorf("missing command: %+v", run)
	}
}

// Cancel stops the whole tree, children that ignore SIGTERM and a
// double-forked daemon included.
func TestCancelKillsTheProcessTree(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	marker := fmt.Sprintf("paddock-e2e-marker-%d", time.Now().UnixNano())
	script := fmt.Sprintf(`python3 -c 'import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)' %[1]s &
setsid sh -c 'python3 -c "import time; time.sleep(1000)" %[1]s' &
echo started
sleep 1000`, marker)
	id := e.submit("--", "sh", "-c", script)
	eventually(t, 20*time.Second, "the run's processes", func() bool { return len(pidsWith(marker)) >= 2 })
	e.ok("run", "cancel", id)
	run := e.show(id)
	if run.Status != api.RunCanceled || run.Attempts[0].Reason != "Canceled" {
		t.Fatalf("after cancel: %+v", run)
	}
	if left := pidsWith(marker); len(left) > 0 {
		t.Fatalf("processes survived the cancel: %v", left)
	}
	// Cancelling again is harmless; cancelling a queued run ends it at once.
	e.ok("run", "cancel", id)
}

func TestFiftyRunsAtOnceAllComplete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	var wg sync.WaitGroup
	ids := make([]string, 50)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.run("run", "submit", "--compute", "local", "-o", "json", "--", "sh", "-c", fmt.Sprintf("echo run-number-%d", i))
			if r.code == 0 {
				ids[i] = decodeJSON[api.Run](t, r.stdout).ID
			} else {
				t.Errorf("submit %d: exit %d %s", i, r.code, r.stderr)
			}
		}()
	}
	wg.Wait()
	for i, id := range ids {
		run := e.waitRun(id)
		if run.Status != api.RunCompleted {
			t.Errorf("run %d (%s): %s %s", i, id, run.Status, run.Error)
			continue
		}
		if logs := e.ok("run", "logs", id); strings.TrimSpace(logs) != fmt.Sprintf("run-number-%d", i) {
			t.Errorf("run %d logs: %q", i, logs)
		}
	}
	if runs := decodeJSON[[]api.Run](t, e.ok("run", "list", "-o", "json")); len(runs) != 50 {
		t.Errorf("%d runs listed, want 50", len(runs))
	}
}

// kill -9 of the server mid-run: the agent keeps the run going, the
// restarted server (on another port) gets it back, and the log is whole.
func TestServerCrashMidRunLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up()
	script := `for i in $(seq 1 40); do echo "line $i"; sleep 0.05; done; mkdir -p outputs; echo done > outputs/result.txt`
	marker := fmt.Sprintf("paddock-crash-%d", time.Now().UnixNano())
	id := e.submit("--", "sh", "-c", script, marker) // the marker is the script's $0
	eventually(t, 20*time.Second, "some log lines", func() bool {
		return strings.Count(e.run("run", "logs", id).stdout, "line ") >= 5
	})
	s.kill()
	// The run goes on without a server, to its end.
	eventually(t, 20*time.Second, "the run to end while the server is down", func() bool { return len(pidsWith(marker)) == 0 })
	e.up()
	run := e.waitRun(id)
	if run.Status != api.RunCompleted || len(run.Outputs) != 1 {
		t.Fatalf("after the crash: %+v", run)
	}
	var want []string
	for i := 1; i <= 40; i++ {
		want = append(want, fmt.Sprintf("line %d", i))
	}
	if got := strings.TrimSpace(e.ok("run", "logs", id)); got != strings.Join(want, "\n") {
		t.Fatalf("log after the crash is not whole and in order:\n%s", got)
	}
}

func TestMaxRunDurationStopsTheRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	start := time.Now()
	id := e.submit("--max-run-duration", "1s", "--", "sleep", "60")
	run := e.waitRun(id)
	if run.Status != api.RunCanceled || run.Attempts[0].Reason != "MaxRunDurationExceeded" || time.Since(start) > 20*time.Second {
		t.Fatalf("run: %+v after %s", run, time.Since(start))
	}
}

// A node that stops heartbeating (its agent frozen) loses its runs with
// reason NodeLost; an agent that restarts without them does too.
func TestNodeLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up("--node-lost-timeout", "2s")
	id := e.submit("--", "sleep", "60")
	eventually(t, 20*time.Second, "the run to start", func() bool { return e.show(id).Status == api.RunRunning })
	pid := e.agentPID()
	syscall.Kill(pid, syscall.SIGSTOP)
	run := e.waitRun(id)
	syscall.Kill(pid, syscall.SIGCONT)
	if run.Status != api.RunFailed || run.StatusReason != "NodeLost" {
		t.Fatalf("frozen agent: %+v", run)
	}

	marker := fmt.Sprintf("paddock-nodelost-%d", time.Now().UnixNano())
	id = e.submit("--", "python3", "-c", "import time; time.sleep(60)", marker)
	eventually(t, 20*time.Second, "the run to start", func() bool { return e.show(id).Status == api.RunRunning })
	syscall.Kill(e.agentPID(), syscall.SIGKILL)
	run = e.waitRun(id)
	if run.Status != api.RunFailed || run.StatusReason != "NodeLost" {
		t.Fatalf("killed agent: %+v", run)
	}
	// The restarted agent killed what the dead one left running.
	eventually(t, 10*time.Second, "the orphaned run process to be killed", func() bool { return len(pidsWith(marker)) == 0 })
	// The supervisor restarted the agent: new runs work.
	if run := e.waitRun(e.submit("--", "true")); run.Status != api.RunCompleted {
		t.Fatalf("after the agent restart: %+v", run)
	}
}

func TestSubmitValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	e.ok("compute", "create", "cluster", "cpu-cluster", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2")
	big := filepath.Join(e.home, "big")
	os.MkdirAll(big, 0o755)
	f, _ := os.Create(filepath.Join(big, "data.bin"))
	f.Truncate(200 << 20)
	f.Close()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--compute", "nope-nope", "--", "true"}, 2, `compute "nope-nope" is not a compute target`},
		{[]string{"--compute", "local", "--nodes", "2", "--", "true"}, 2, "multi-node runs need a cluster"},
		{[]string{"--compute", "local"}, 2, "the command to run is required"},
		{[]string{"--", "true"}, 2, "--compute (see `paddock compute list`) or --compute-spec is required"},
		{[]string{"--compute", "local", "--cores", "64", "--", "true"}, 2, "more than any node of local has"},
		{[]string{"--compute", "local", "--env", "PADDOCK_X=1", "--", "true"}, 2, "set by Paddock"},
		{[]string{"--compute", "local", "--env", "novalue", "--", "true"}, 2, "--env must be KEY=VALUE"},
		{[]string{"--compute", "local", "--max-run-duration", "soon", "--", "true"}, 2, "--max-run-duration must be a duration"},
		{[]string{"--compute", "local", "--source", big, "--", "true"}, 2, "larger than the 100 MiB limit"},
		{[]string{"--compute", "local", "--source", "/nonexistent", "--", "true"}, 2, "is not a directory"},
		{[]string{"--compute", "local", "--python", "/usr/bin/python3", "--image", "x", "--", "true"}, 2, "give only one of --python, --requirements, --conda and --image"},
	}
	for _, tc := range cases {
		r := e.run(append([]string{"run", "submit"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("run submit %v: exit %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if r := e.run("run", "show", "run-nope"); r.code != 3 {
		t.Errorf("show of a missing run: exit %d", r.code)
	}
	if runs := decodeJSON[[]api.Run](t, e.ok("run", "list", "-o", "json")); len(runs) != 0 {
		t.Errorf("refused submissions left %d runs", len(runs))
	}
}

func TestIdempotentSubmit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	a := e.submit("--idempotency-key", "k-1", "--", "true")
	b := e.submit("--idempotency-key", "k-1", "--", "true")
	c := e.submit("--idempotency-key", "k-2", "--", "true")
	if a != b || a == c {
		t.Fatalf("ids %s %s %s: a retried submit must return the first run", a, b, c)
	}
}

func TestEnvironments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	r := e.run("run", "submit", "--compute", "local", "--python", "/usr/bin/python3", "--stream", "--",
		"python3", "-c", "import os, sys; print(os.path.realpath(sys.executable))")
	want, _ := filepath.EvalSymlinks("/usr/bin/python3")
	if r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Errorf("--python: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	req := writeFile(t, e.home, "requirements.txt", "# nothing to install: the venv itself is what is tested\n")
	for i, want := range []string{"building environment", "reusing environment"} {
		r := e.run("run", "submit", "--compute", "local", "--requirements", req, "--stream", "--",
			"python3", "-c", "import sys; print(sys.prefix)")
		if r.code != 0 || !strings.Contains(r.stdout, filepath.Join("local-agent", "work", "envs")) || !strings.Contains(r.stderr, want) {
			t.Errorf("--requirements run %d: exit %d\nstdout %q\nstderr %q", i, r.code, r.stdout, r.stderr)
		}
	}
	id := e.submit("--image", "localhost/does-not-matter:1", "--", "true")
	run := e.waitRun(id)
	switch {
	case run.Status != api.RunFailed:
		t.Errorf("a run whose image does not exist: %s %q %q, want Failed", run.Status, run.StatusReason, run.Error)
	case run.StatusReason == "ImageUnavailable": // an engine works; the image does not exist
		if !strings.Contains(run.Error, "localhost/does-not-matter:1") {
			t.Errorf("ImageUnavailable without the image's name: %q", run.Error)
		}
	case run.StatusReason != "EnvironmentFailed" || !strings.Contains(run.Error, "needs podman or docker"):
		t.Errorf("a run with an image on a node without a working engine: %q %q, want EnvironmentFailed saying it needs podman or docker", run.StatusReason, run.Error)
	}
	// An engine that is installed but not usable is named with its problem,
	// not with the first line of its output (docker's is "Client:").
	if strings.Contains(run.Error, "not usable (Client:)") || strings.Contains(run.Error, "not usable ()") {
		t.Errorf("the engine's problem is hidden: %s", run.Error)
	}
}

// Logs follow a running run live and end when it ends; run show shows the
// command as it was given.
func TestLogsFollow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	id := e.submit("--", "sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.3; done")
	r := e.run("run", "logs", id, "-f")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "tick 1\ntick 2\ntick 3" {
		t.Fatalf("logs -f: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if run := e.show(id); run.Status != api.RunCompleted {
		t.Fatalf("logs -f returned before the run ended: %s", run.Status)
	}
	// A command is shown as it was given, "&&" included (not "\u0026\u0026").
	amp := e.submit("--", "sh", "-c", "true && echo a<b")
	for _, args := range [][]string{{"run", "show", amp}, {"run", "show", amp, "-o", "json"}} {
		if out := e.ok(args...); !strings.Contains(out, `"true && echo a<b"`) {
			t.Errorf("%v:\n%s", args, out)
		}
	}
}

var _ = json.Marshal

// A run gets the memory it asked for and no more (cgroups), and runs
// that do not fit wait their turn in submission order.
func TestResourcesLimitAndQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	hog := "x = bytearray(400 << 20); print('survived')"
	small := e.waitRun(e.submit("--memory-gb", "0.1", "--", "python3", "-c", hog))
	if small.Status != api.RunFailed || small.ExitCode == nil || *small.ExitCode != 137 ||
		!strings.Contains(small.Error, "killed for using more than its memory limit (0.1 GiB") {
		t.Errorf("400 MB in a 0.1 GiB run: %+v (want Failed, exit 137, and an error that names the memory limit)", small)
	}
	big := e.waitRun(e.submit("--memory-gb", "1", "--", "python3", "-c", hog))
	if big.Status != api.RunCompleted {
		t.Errorf("400 MB in a 1 GiB run: %+v", big)
	}

	// Each run takes all of the local node's cores, so they run one at a
	// time, in the order they were submitted.
	var ids []string
	for range 3 {
		ids = append(ids, e.submit("--cores", strconv.Itoa(runtime.NumCPU()), "--", "sleep", "0.3"))
	}
	var prevEnd time.Time
	for i, id := range ids {
		r := e.waitRun(id)
		if r.Status != api.RunCompleted || r.StartedAt == nil {
			t.Fatalf("run %d: %+v", i, r)
		}
		if r.StartedAt.Before(prevEnd) {
			t.Errorf("run %d started at %s, before run %d ended at %s", i, r.StartedAt, i-1, prevEnd)
		}
		prevEnd = *r.EndedAt
	}
}

// apiClient is an API client for the env's server, as its CLI config says.
func (e *env) apiClient() *api.Client {
	e.t.Helper()
	data, err := os.ReadFile(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	var cfg struct{ Server, Token, Workspace string }
	if err := json.Unmarshal(data, &cfg); err != nil {
		e.t.Fatal(err)
	}
	return api.NewClient(cfg.Server, cfg.Token, cfg.Workspace)
}

// A burst of trivial runs from several clients all complete, and nothing
// in it is worth a warning: no attempt is called stale, no report is cut
// off, in the server's log or the agent's.
func TestBurstIsClean(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := e.up()
	c := e.apiClient()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ids := make(chan string, 200)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				r, err := c.SubmitRun(ctx, api.RunSubmit{Compute: "local", Command: []string{"true"}}, "")
				if err != nil {
					t.Errorf("submit: %v", err)
					return
				}
				ids <- r.ID
			}
		}()
	}
	wg.Wait()
	close(ids)
	n := 0
	for id := range ids {
		r, err := c.WaitRun(ctx, id, nil)
		if err != nil || r.Status != api.RunCompleted {
			t.Fatalf("run %s: %v %+v", id, err, r)
		}
		n++
	}
	if n != 200 {
		t.Fatalf("%d runs, want 200", n)
	}
	agentLog, _ := os.ReadFile(filepath.Join(e.dataDir, "local-agent", "agent.log"))
	for name, log := range map[string]string{"server": srv.Logs(), "agent": string(agentLog)} {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				t.Errorf("%s log: %s", name, line)
			}
		}
	}
}
