package e2e

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/testenv"
)

// The HA test's load: runs printing a numbered line every 50 ms and
// writing each number to their outputs as they go, on a cluster that
// scales from 0 to haNodes nodes while they queue.
const (
	haRuns  = 50
	haLines = 30
	haNodes = 5
)

var leadsLine = regexp.MustCompile(`time=(\S+) level=INFO msg="this server leads the workspace"`)

// Three replicas on one PostgreSQL; 50 runs active on a cluster scaling up;
// the leader is killed with SIGKILL at a chosen point of its work. A new
// leader takes over within 5 s, every run ends Completed in its first
// attempt with every numbered line in its log exactly once and its outputs
// whole, no run is submitted twice, log streams and watches followed
// through the leader resume on another replica, and no node process is
// left behind. Three times, killing the leader at three points: while it
// places runs, right after a commit (before it told anyone), and while it
// scales the cluster up.
func TestHAFailover(t *testing.T) {
	// The commit point is early enough to be reached however the load
	// groups the changes into commits (50 runs make well over 60).
	for _, point := range []string{"dispatch.place:2", "dispatch.commit:30", "nodes.created:3"} {
		t.Run(strings.SplitN(point, ":", 2)[0], func(t *testing.T) { haRound(t, point) })
	}
}

func adminToken(t *testing.T, e *env) string {
	t.Helper()
	data, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct{ Token string }
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Token
}

// replicaUp starts a replica of the PostgreSQL store on e's data dir.
func replicaUp(e *env, dsn string, env ...string) *server {
	e.extra = env
	defer func() { e.extra = nil }()
	return e.up("--store", dsn, "--lease-ttl", "3s")
}

func haRound(t *testing.T, crashAt string) {
	dsn := testenv.Postgres(t)
	e := newEnv(t)
	r1 := replicaUp(e, dsn, "PADDOCK_CRASH_AT="+crashAt)
	// When the leader dies (it is a zombie until reaped).
	diedCh := make(chan time.Time, 1)
	go func() {
		for pid := r1.cmd.Process.Pid; alive(pid); time.Sleep(2 * time.Millisecond) {
		}
		diedCh <- time.Now()
	}()
	eventually(t, 20*time.Second, "the first replica to lead", func() bool { return strings.Contains(r1.Logs(), "this server leads") })
	r2, r3 := replicaUp(e, dsn), replicaUp(e, dsn)
	replicas := []*server{r1, r2, r3}
	servers := r1.url + "," + r2.url + "," + r3.url
	// The leader tells agents of every replica (it looks every second).
	eventually(t, 20*time.Second, "the leader to know the three replicas", func() bool {
		return strings.Contains(r1.Logs(), "servers="+servers) || strings.Contains(r1.Logs(), "servers="+r1.url+","+r3.url+","+r2.url)
	})
	c := api.NewClient(servers, adminToken(t, e), "default")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	props, _ := json.Marshal(map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": haNodes, "idle_seconds_before_scaledown": 3})
	if _, err := c.CreateCompute(ctx, api.ComputeCreate{Name: "ha-cluster", Type: "cluster", Properties: props}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitCompute(ctx, "ha-cluster", false, nil); err != nil {
		t.Fatal(err)
	}

	// Submit, each run with its own idempotency key, retried until the
	// workspace takes it: a retry across the failover must not make a
	// second run.
	script := fmt.Sprintf(`mkdir -p outputs; for i in $(seq 1 %d); do echo "line $i"; echo $i >> outputs/n.txt; sleep 0.05; done`, haLines)
	ids := make([]string, haRuns)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				for ctx.Err() == nil {
					r, err := c.SubmitRun(ctx, api.RunSubmit{Compute: "ha-cluster", Command: []string{"sh", "-c", script},
						Resources: &api.Resources{Cores: 0.2}}, fmt.Sprintf("ha-%d", i))
					if err == nil {
						ids[i] = r.ID
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	for i := range haRuns {
		work <- i
	}
	close(work)

	// Follow a few runs' logs and watch one, through whichever replica
	// answers first (the leader): they must carry on elsewhere.
	wg.Wait()
	followed := map[string][]api.LogLine{}
	var fmu sync.Mutex
	var fwg sync.WaitGroup
	leaderFirst := api.NewClient(servers, adminToken(t, e), "default")
	for _, id := range ids[:3] {
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			err := leaderFirst.FollowLogs(ctx, id, 0, true, func(l api.LogLine) error {
				fmu.Lock()
				followed[id] = append(followed[id], l)
				fmu.Unlock()
				return nil
			})
			if err != nil {
				t.Errorf("following the log of %s: %v", id, err)
			}
		}()
	}
	var watched *api.Run
	fwg.Add(1)
	go func() {
		defer fwg.Done()
		var err error
		if watched, err = leaderFirst.WaitRun(ctx, ids[haRuns-1], nil); err != nil {
			t.Errorf("waiting for %s: %v", ids[haRuns-1], err)
		}
	}()

	// The leader dies at the crash point.
	var died time.Time
	select {
	case died = <-diedCh:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the leader never reached its crash point %s\n%s", crashAt, r1.Logs())
	}
	<-r1.done
	if !strings.Contains(r1.Logs(), "crash point "+strings.SplitN(crashAt, ":", 2)[0]+" reached") {
		t.Fatalf("the leader ended without reaching its crash point: %v\n%s", r1.err, r1.Logs())
	}
	byStatus := map[api.RunStatus]int{}
	if runs, err := c.ListRuns(ctx, "ha-cluster", 100); err == nil {
		for _, r := range runs {
			byStatus[r.Status]++
		}
	}
	nodesThen, _ := c.ListNodes(ctx, "ha-cluster")
	t.Logf("the leader was killed at %s with the runs %v on %d nodes", crashAt, byStatus, len(nodesThen))
	var newLeader *server
	var led time.Time
	eventually(t, 30*time.Second, "a new leader", func() bool {
		for _, r := range []*server{r2, r3} {
			if m := leadsLine.FindStringSubmatch(r.Logs()); m != nil {
				newLeader = r
				led, _ = time.Parse(time.RFC3339Nano, m[1])
				return true
			}
		}
		return false
	})
	failover := led.Sub(died)
	t.Logf("a new leader took over %s after the old one died", failover.Round(time.Millisecond))
	if failover > time.Second {
		t.Logf("the new leader's log:\n%s", newLeader.Logs())
	}
	if failover > 5*time.Second {
		t.Errorf("the new leader took over %s after the old one died, want within 5 s", failover)
	}

	// Every run ends Completed, once.
	eventually(t, 3*time.Minute, "every run to end", func() bool {
		runs, err := c.ListRuns(ctx, "ha-cluster", 1000)
		if err != nil {
			return false
		}
		for _, r := range runs {
			if !r.Status.Terminal() {
				return false
			}
		}
		return len(runs) >= haRuns
	})
	runs, err := c.ListRuns(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != haRuns {
		t.Errorf("%d runs in the workspace, want %d: a submission made two", len(runs), haRuns)
	}
	want := make([]string, haLines)
	for i := range want {
		want[i] = "line " + strconv.Itoa(i+1)
	}
	for _, id := range ids {
		r, err := c.GetRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != api.RunCompleted || len(r.Attempts) != 1 {
			t.Errorf("run %s: %s after %d attempts (%s %s)", id, r.Status, len(r.Attempts), r.StatusReason, r.Error)
			continue
		}
		var lines []api.LogLine
		if err := c.FollowLogs(ctx, id, 0, false, func(l api.LogLine) error { lines = append(lines, l); return nil }); err != nil {
			t.Fatal(err)
		}
		if got := texts(lines); !slices.Equal(got, want) {
			t.Errorf("the log of %s has %d lines, want line 1 to line %d once each: %q", id, len(got), haLines, got)
		}
		if got := outputNumbers(t, ctx, c, id); got != haLines {
			t.Errorf("the outputs of %s hold %d numbers of %d", id, got, haLines)
		}
	}
	fwg.Wait()
	for id, lines := range followed {
		if got := texts(lines); !slices.Equal(got, want) {
			t.Errorf("following the log of %s across the failover gave %d lines: %q", id, len(got), got)
		}
	}
	if watched == nil || watched.Status != api.RunCompleted {
		t.Errorf("watching %s across the failover ended with %+v", ids[haRuns-1], watched)
	}

	// The cluster scales back to zero, and then no node process is left.
	eventually(t, 60*time.Second, "the cluster to scale down", func() bool {
		nodes, err := c.ListNodes(ctx, "ha-cluster")
		return err == nil && len(nodes) == 0
	})
	for _, r := range replicas {
		if r != r1 {
			r.stop(t)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); len(processesOn(e.dataDir)) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if left := processesOn(e.dataDir); len(left) > 0 {
		t.Errorf("processes left behind on the data dir 20 s after the replicas stopped: %v", left)
		for _, r := range replicas[1:] {
			logs := r.Logs()
			t.Logf("the log of %s ends:\n%s", r.url, logs[max(0, len(logs)-6000):])
		}
	}
}

func texts(lines []api.LogLine) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, l.Text)
	}
	return out
}

// outputNumbers counts the numbers 1..haLines, each once, in a run's
// outputs/n.txt.
func outputNumbers(t *testing.T, ctx context.Context, c *api.Client, id string) int {
	t.Helper()
	body, err := c.Outputs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	gz, err := gzip.NewReader(body)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			return 0
		}
		if filepath.Base(h.Name) != "n.txt" {
			continue
		}
		data, _ := io.ReadAll(tr)
		seen := map[string]bool{}
		for i, f := range strings.Fields(string(data)) {
			if f != strconv.Itoa(i+1) || seen[f] {
				return -1
			}
			seen[f] = true
		}
		return len(seen)
	}
}

// processesOn lists the processes whose command line names dir.
func processesOn(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !alive(pid) {
			continue
		}
		if strings.Contains(string(cmd), dir) {
			out = append(out, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(string(cmd), "\x00", " ")))
		}
	}
	return out
}

// Rotating the leader (docs/ha.md): SIGTERM to the leader gives the lease
// up after its last writes, a follower leads at once (well within the
// lease TTL, which a killed leader's takeover does not wait for either),
// the old leader exits cleanly, and a run submitted through the replicas
// before and after completes; restarted, the old leader follows.
func TestHALeaderRotation(t *testing.T) {
	dsn := testenv.Postgres(t)
	e := newEnv(t)
	r1 := replicaUp(e, dsn)
	eventually(t, 20*time.Second, "the first replica to lead", func() bool { return strings.Contains(r1.Logs(), "this server leads") })
	r2 := replicaUp(e, dsn)
	c := api.NewClient(r1.url+","+r2.url, adminToken(t, e), "default")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(what string) {
		t.Helper()
		r, err := c.SubmitRun(ctx, api.RunSubmit{Compute: "local", Command: []string{"echo", what}}, "")
		if err != nil {
			t.Fatalf("submitting %s: %v", what, err)
		}
		done, err := c.WaitRun(ctx, r.ID, nil)
		if err != nil || done.Status != api.RunCompleted {
			t.Fatalf("the run %s: %+v, %v", what, done, err)
		}
	}
	run("before")
	stopped := time.Now()
	if err := r1.stop(t); err != nil {
		t.Fatalf("the leader did not stop cleanly: %v\n%s", err, r1.Logs())
	}
	if !strings.Contains(r1.Logs(), "gave up the leader lease") {
		t.Fatalf("the leader stopped without giving up its lease\n%s", r1.Logs())
	}
	eventually(t, 10*time.Second, "the follower to lead", func() bool { return strings.Contains(r2.Logs(), "this server leads") })
	m := leadsLine.FindStringSubmatch(r2.Logs())
	led, _ := time.Parse(time.RFC3339Nano, m[1])
	t.Logf("the follower led %s after SIGTERM to the leader", led.Sub(stopped).Round(time.Millisecond))
	if led.Sub(stopped) > 3*time.Second { // the lease TTL is 3 s: a resignation does not wait for it
		t.Errorf("the follower led %s after the leader was stopped: the lease was not given up", led.Sub(stopped))
	}
	run("after")
	// Started again, the old leader follows: it answers reads itself and
	// hands writes to the leader.
	r3 := replicaUp(e, dsn)
	c = api.NewClient(r3.url, adminToken(t, e), "default")
	run("through the follower")
	if strings.Contains(r3.Logs(), "this server leads") {
		t.Errorf("a replica started beside a leader leads too\n%s", r3.Logs())
	}
}

// `paddock store copy` moves a SQLite workspace into PostgreSQL: a server
// started on the copy has the runs and their logs, the same admin token
// works, a second copy is refused, and a bad --to says which flag is wrong.
func TestStoreCopyToPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	e := newEnv(t)
	s := e.up()
	id := e.submit("--", "sh", "-c", "echo moved along")
	if r := e.waitRun(id); r.Status != api.RunCompleted {
		t.Fatalf("run %s: %s", id, r.Status)
	}
	// Copying while the server runs is refused: the store may change under it.
	if r := e.run("store", "copy", "--from", "sqlite:"+e.dataDir, "--to", dsn); r.code == 0 || !strings.Contains(r.stderr, "is running on data dir") {
		t.Fatalf("store copy beside a running server: exit %d %q", r.code, r.stderr)
	}
	s.stop(t)
	if r := e.run("store", "copy", "--from", "sqlite:"+e.dataDir, "--to", "mysql://x"); r.code != 2 || !strings.Contains(r.stderr, "--to must be a postgres:// URL") {
		t.Fatalf("store copy --to mysql://x: exit %d %q", r.code, r.stderr)
	}
	out := e.ok("store", "copy", "--from", "sqlite:"+e.dataDir, "--to", dsn)
	if !strings.Contains(out, "every table's count matches") {
		t.Fatalf("store copy said:\n%s", out)
	}
	if r := e.run("store", "copy", "--from", "sqlite:"+e.dataDir, "--to", dsn); r.code == 0 || !strings.Contains(r.stderr, "already holds a workspace") {
		t.Fatalf("a second store copy into the same database: exit %d %q", r.code, r.stderr)
	}
	replicaUp(e, dsn)
	if got := strings.TrimSpace(e.ok("run", "logs", id)); got != "moved along" {
		t.Errorf("the copied run's log on PostgreSQL: %q", got)
	}
	if r := e.show(id); r.Status != api.RunCompleted {
		t.Errorf("the copied run on PostgreSQL: %s", r.Status)
	}
}
