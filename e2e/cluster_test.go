package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

func (e *env) nodes(cluster string) []api.Node {
	e.t.Helper()
	return decodeJSON[[]api.Node](e.t.(*testing.T), e.ok("compute", "nodes", cluster, "-o", "json"))
}

func (e *env) clusterStatus(name string) map[string]any {
	e.t.Helper()
	return decodeJSON[map[string]any](e.t.(*testing.T), e.ok("compute", "status", name, "-o", "json"))
}

// A cluster grows from 0 to max_nodes as runs queue, never beyond, and
// shrinks back to 0 after the idle time; each node is a real agent process.
func TestClusterScalesUpToMaxAndBackToZero(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	e.ok("compute", "create", "cluster", "cpu-cluster", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "3",
		"--idle-seconds-before-scaledown", "2")
	if n := e.nodes("cpu-cluster"); len(n) != 0 {
		t.Fatalf("a new cluster with min_nodes 0 has %d nodes", len(n))
	}
	// Each run takes a whole node (2 cores), so 5 runs want 5 nodes; max is 3.
	var ids []string
	for i := range 5 {
		ids = append(ids, e.submit2("cpu-cluster", "--cores", "2", "--", "sh", "-c", fmt.Sprintf("sleep 1; echo run %d on $(hostname)", i)))
	}
	maxSeen := 0
	eventually(t, 60*time.Second, "the 5 runs to end", func() bool {
		maxSeen = max(maxSeen, len(e.nodes("cpu-cluster")))
		for _, id := range ids {
			if !e.show(id).Status.Terminal() {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		if r := e.show(id); r.Status != api.RunCompleted {
			t.Errorf("run %s: %s %s", id, r.Status, r.Error)
		}
	}
	if maxSeen != 3 {
		t.Errorf("the cluster peaked at %d nodes, want exactly max_nodes 3", maxSeen)
	}
	nodesUsed := map[string]bool{}
	for _, id := range ids {
		nodesUsed[e.show(id).Attempts[0].Node] = true
	}
	if len(nodesUsed) < 2 {
		t.Errorf("runs used %d nodes", len(nodesUsed))
	}
	// Idle for 2 s: back to zero, and the agents are gone.
	eventually(t, 20*time.Second, "scale-down to zero", func() bool { return len(e.nodes("cpu-cluster")) == 0 })
	if st := e.clusterStatus("cpu-cluster"); st["current_node_count"] != 0.0 || st["allocation_state"] != "Steady" {
		t.Errorf("status after scale-down: %v", st)
	}
	if pids, _ := filepath.Glob(filepath.Join(e.dataDir, "nodes", "*", "agent.pid")); len(pids) != 0 {
		t.Errorf("node agents left behind: %v", pids)
	}
}

func (e *env) submit2(compute string, args ...string) string {
	e.t.Helper()
	return e.runJSON(append([]string{"run", "submit", "--compute", compute}, args...)...).ID
}

// min_nodes keeps nodes warm; update takes effect without restarting;
// delete refuses while runs are active unless --force.
func TestClusterMinNodesUpdateAndDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	e.ok("compute", "create", "cluster", "warm", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2", "--min-nodes", "1",
		"--idle-seconds-before-scaledown", "1")
	// (That an idle node is kept past its idle time because of min_nodes is
	// TestControllerKeepsMinNodes's, with a fake clock.)
	eventually(t, 20*time.Second, "one warm node", func() bool {
		n := e.nodes("warm")
		return len(n) == 1 && n[0].State == "idle"
	})
	e.ok("compute", "update", "warm", "--min-nodes", "2")
	eventually(t, 20*time.Second, "two nodes after the update", func() bool { return len(e.nodes("warm")) == 2 })
	e.ok("compute", "update", "warm", "--min-nodes", "0")
	eventually(t, 20*time.Second, "zero nodes after the update", func() bool { return len(e.nodes("warm")) == 0 })

	id := e.submit2("warm", "--", "sleep", "60")
	eventually(t, 20*time.Second, "the run to start", func() bool { return e.show(id).Status == api.RunRunning })
	if r := e.run("compute", "delete", "warm"); r.code != 4 || !strings.Contains(r.stderr, "has 1 active runs") {
		t.Fatalf("delete with an active run: exit %d %q", r.code, r.stderr)
	}
	e.ok("compute", "delete", "warm", "--force")
	if r := e.show(id); r.Status != api.RunCanceled {
		t.Errorf("run after delete --force: %s", r.Status)
	}
	if pids, _ := filepath.Glob(filepath.Join(e.dataDir, "nodes", "*", "agent.pid")); len(pids) != 0 {
		t.Errorf("node agents left after delete: %v", pids)
	}
}

// A preempted low-priority node's run restarts as a new attempt with its
// checkpoints and completes.
func TestPreemptedRunResumesFromCheckpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	src := filepath.Join(e.home, "src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "train.py", `import os, time
os.makedirs("outputs", exist_ok=True)
step = int(open("outputs/ckpt.txt").read()) if os.path.exists("outputs/ckpt.txt") else 0
print("attempt", os.environ["PADDOCK_ATTEMPT"], "starts at step", step, flush=True)
while step < 10:
    step += 1
    time.sleep(0.3)
    open("outputs/ckpt.tmp", "w").write(str(step))
    os.replace("outputs/ckpt.tmp", "outputs/ckpt.txt")
    print("step", step, flush=True)
print("finished at step", step)
`)
	e.ok("compute", "create", "cluster", "low-pri", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1", "--vm-priority", "lowpriority")
	id := e.submit2("low-pri", "--source", src, "--", "python3", "train.py")
	eventually(t, 30*time.Second, "a checkpoint", func() bool {
		return strings.Contains(e.run("run", "logs", id).stdout, "starts at step 0") &&
			e.show(id).Status == api.RunRunning && len(e.nodes("low-pri")) == 1 && stepLogged(e, id, 3) &&
			len(e.show(id).Outputs) == 1 // a checkpoint was uploaded
	})
	node := e.nodes("low-pri")[0].ID
	e.ok("compute", "preempt", "low-pri", node)
	run := e.waitRun(id)
	if run.Status != api.RunCompleted || len(run.Attempts) != 2 || run.Attempts[0].Reason != "Preempted" || run.Attempts[0].Node != node {
		t.Fatalf("after preemption: %+v", run)
	}
	logs := e.ok("run", "logs", id)
	if strings.Contains(logs, "attempt 2 starts at step 0") || !strings.Contains(logs, "attempt 2 starts at step") || !strings.Contains(logs, "finished at step 10") {
		t.Fatalf("the second attempt did not resume from the checkpoint:\n%s", logs)
	}
	if r := e.run("compute", "preempt", "low-pri", "no-such-node"); r.code != 3 {
		t.Errorf("preempt of an unknown node: exit %d %q", r.code, r.stderr)
	}
}

// stepLogged reports whether the run logged "step n" (the agent uploads
// checkpoints every second, so a few steps later one has been uploaded).
func stepLogged(e *env, id string, n int) bool {
	return strings.Contains(e.run("run", "logs", id).stdout, fmt.Sprintf("step %d\n", n))
}

// A restarted server adopts the cluster nodes that are still alive instead
// of starting new ones, and a run in flight completes.
func TestRestartAdoptsLiveNodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up()
	e.ok("compute", "create", "cluster", "keep", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2", "--min-nodes", "1")
	eventually(t, 20*time.Second, "a ready node", func() bool {
		n := e.nodes("keep")
		return len(n) == 1 && n[0].State == "idle"
	})
	before := e.nodes("keep")[0].ID
	id := e.submit2("keep", "--", "sh", "-c", "sleep 2; echo survived")
	eventually(t, 20*time.Second, "the run to start", func() bool { return e.show(id).Status == api.RunRunning })
	s.kill()
	e.up()
	run := e.waitRun(id)
	if run.Status != api.RunCompleted || strings.TrimSpace(e.ok("run", "logs", id)) != "survived" {
		t.Fatalf("run after the restart: %+v", run)
	}
	after := e.nodes("keep")
	if len(after) != 1 || after[0].ID != before {
		t.Fatalf("nodes after the restart: %+v (want the adopted %s only)", after, before)
	}
}

func TestClusterSubmitValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	e.ok("compute", "create", "cluster", "small", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--gpus", "4"}, "no node of STANDARD_D2_V2 can ever fit 4 GPUs"},
		{[]string{"--cores", "3"}, "no node of STANDARD_D2_V2 can ever fit 3 cores"},
		{[]string{"--memory-gb", "8"}, "no node of STANDARD_D2_V2 can ever fit 8 GiB"},
	} {
		r := e.run(append(append([]string{"run", "submit", "--compute", "small"}, tc.args...), "--", "true")...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d %q", tc.args, r.code, r.stderr)
		}
	}
}

// A 2-node run gets both nodes at once; each rank sees its rank and the
// same MASTER_ADDR; one rank failing stops the other.
func TestMultiNodeRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	e.ok("compute", "create", "cluster", "gang", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2")
	id := e.submit2("gang", "--nodes", "2", "--", "sh", "-c",
		`echo "rank=$RANK node_rank=$NODE_RANK world=$WORLD_SIZE master=$MASTER_ADDR:$MASTER_PORT local=$LOCAL_RANK hosts=$PADDOCK_HOSTS"`)
	run := e.waitRun(id)
	if run.Status != api.RunCompleted || len(run.Attempts[0].Nodes) != 2 {
		t.Fatalf("2-node run: %+v", run)
	}
	logs := decodeLogLines(t, e.ok("run", "logs", id, "-o", "json"))
	if len(logs) != 2 {
		t.Fatalf("want one line per rank, got %+v", logs)
	}
	masters := map[string]bool{}
	ranks := map[string]bool{}
	for _, l := range logs {
		f := map[string]string{}
		for _, kv := range strings.Fields(l.Text) {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		if f["world"] != "2" || f["local"] != "0" || f["rank"] != f["node_rank"] || f["rank"] != fmt.Sprint(l.Rank) {
			t.Errorf("rank %d saw %q", l.Rank, l.Text)
		}
		masters[f["master"]] = true
		ranks[f["rank"]] = true
	}
	if len(masters) != 1 || !ranks["0"] || !ranks["1"] {
		t.Errorf("ranks %v, master addresses %v: want ranks 0 and 1 and one master", ranks, masters)
	}
	// In the text log, rank 1's line says it is rank 1's.
	text := e.ok("run", "logs", id)
	if !strings.Contains(text, "\n[rank 1] rank=1 ") && !strings.HasPrefix(text, "[rank 1] rank=1 ") || strings.Contains(text, "[rank 0]") {
		t.Errorf("text log of a 2-node run:\n%s", text)
	}

	marker := fmt.Sprintf("paddock-gang-%d", time.Now().UnixNano())
	start := time.Now()
	id = e.submit2("gang", "--nodes", "2", "--", "sh", "-c",
		`if [ "$NODE_RANK" = 1 ]; then exit 7; fi; python3 -c 'import time; time.sleep(60)' `+marker)
	run = e.waitRun(id)
	if run.Status != api.RunFailed || run.ExitCode == nil || *run.ExitCode != 7 || time.Since(start) > 30*time.Second {
		t.Fatalf("a failing rank: %+v after %s", run, time.Since(start))
	}
	if left := pidsWith(marker); len(left) > 0 {
		t.Errorf("rank 0 kept running after rank 1 failed: %v", left)
	}
	if r := e.run("run", "submit", "--compute", "gang", "--nodes", "3", "--", "true"); r.code != 2 || !strings.Contains(r.stderr, "max_nodes 2") {
		t.Errorf("3 nodes on a 2-node cluster: exit %d %q", r.code, r.stderr)
	}
}

func decodeLogLines(t *testing.T, out string) []api.LogLine {
	var lines []api.LogLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			lines = append(lines, decodeJSON[api.LogLine](t, l))
		}
	}
	return lines
}

// Quotas: min_nodes past the quota is refused; scale-up stops at the quota
// and says so, in the queued runs' reason and the cluster's errors.
func TestQuotas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	// Named as quota show names it.
	if out := e.ok("quota", "set", "--dedicated-cores", "4"); out != "quota (workspace): dedicated 4, low-priority no limit\n" {
		t.Errorf("quota set printed %q", out)
	}
	if out := e.ok("quota", "show"); !strings.Contains(out, "(workspace)") {
		t.Errorf("quota show:\n%s", out)
	}
	if r := e.run("compute", "create", "cluster", "too-warm", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "4", "--min-nodes", "3"); r.code != 4 || !strings.Contains(r.stderr, "quota exceeded") || !strings.Contains(r.stderr, "dedicated core quota is 4") {
		t.Fatalf("min_nodes over quota: exit %d %q", r.code, r.stderr)
	}
	if r := e.run("quota", "set", "--family", "noSuchFamily", "--dedicated-cores", "1"); r.code != 2 {
		t.Errorf("unknown family: exit %d %q", r.code, r.stderr)
	}
	e.ok("compute", "create", "cluster", "capped", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "4")
	var ids []string
	for range 4 {
		ids = append(ids, e.submit2("capped", "--cores", "2", "--", "sleep", "2"))
	}
	eventually(t, 20*time.Second, "the quota to show in a queued run's reason", func() bool {
		for _, id := range ids {
			if r := e.show(id); r.Status == api.RunQueued && strings.Contains(r.StatusReason, "quota") {
				return true
			}
		}
		return false
	})
	// The reason and the cluster's errors are written by one pass, one
	// after the other.
	eventually(t, 10*time.Second, "QuotaExceeded in the cluster's errors", func() bool {
		errs, _ := e.clusterStatus("capped")["errors"].([]any)
		return strings.Contains(fmt.Sprint(errs), "QuotaExceeded")
	})
	maxNodes := 0
	for _, id := range ids {
		eventually(t, 60*time.Second, "run "+id+" to end", func() bool {
			maxNodes = max(maxNodes, len(e.nodes("capped")))
			return e.show(id).Status.Terminal()
		})
		if r := e.show(id); r.Status != api.RunCompleted {
			t.Errorf("run %s: %s", id, r.Status)
		}
	}
	if maxNodes > 2 {
		t.Errorf("the cluster grew to %d nodes; a 4-core quota allows 2 of 2 cores", maxNodes)
	}
	qs := decodeJSON[[]api.Quota](t, e.ok("quota", "show", "-o", "json"))
	if len(qs) == 0 || qs[0].Family != "" || qs[0].DedicatedCores != 4 {
		t.Errorf("quota show: %+v", qs)
	}
	// The cluster's idle nodes still hold the 4 cores: an instance does not fit.
	if n := len(e.nodes("capped")); n > 0 {
		if r := e.run("compute", "create", "instance", "my-box", "--vm-size", "STANDARD_D2_V2"); r.code != 4 || !strings.Contains(r.stderr, "quota exceeded: an instance of STANDARD_D2_V2") {
			t.Errorf("an instance past the quota: exit %d %q", r.code, r.stderr)
		}
	}
}

// run submit --compute-spec makes a cluster for the run and deletes it
// when the run ends, without a warning in the server log; a bad spec
// leaves nothing behind.
func TestRunBasedCluster(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := e.up()
	r := e.run("run", "submit", "--compute-spec", "vm_size=standard_d2_v2,max_nodes=1", "--stream", "--", "sh", "-c", "echo on a cluster of my own")
	if r.code != 0 || !strings.Contains(r.stdout, "on a cluster of my own") {
		t.Fatalf("exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	runs := decodeJSON[[]api.Run](t, e.ok("run", "list", "-o", "json"))
	if len(runs) != 1 || !strings.HasPrefix(runs[0].Compute, "run-") {
		t.Fatalf("runs: %+v", runs)
	}
	eventually(t, 20*time.Second, "the run's cluster to be deleted", func() bool {
		return len(decodeJSON[[]api.Compute](t, e.ok("compute", "list", "-o", "json"))) == 1 // local only
	})
	for _, spec := range []string{"vm_size=NOPE,max_nodes=1", "vm_size=STANDARD_D2_V2", "max_nodes=two", "color=red"} {
		if r := e.run("run", "submit", "--compute-spec", spec, "--", "true"); r.code != 2 {
			t.Errorf("--compute-spec %s: exit %d %q", spec, r.code, r.stderr)
		}
	}
	if r := e.run("run", "submit", "--compute-spec", "vm_size=STANDARD_D2_V2,max_nodes=1", "--gpus", "1", "--", "true"); r.code != 2 || !strings.Contains(r.stderr, "can ever fit 1 GPUs") {
		t.Errorf("a run too big for its spec: exit %d %q", r.code, r.stderr)
	}
	eventually(t, 10*time.Second, "refused submissions to leave no target behind", func() bool {
		return len(decodeJSON[[]api.Compute](t, e.ok("compute", "list", "-o", "json"))) == 1
	})
	for _, line := range strings.Split(srv.Logs(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("server log: %s", line)
		}
	}
}

// With --local-preempt-every the local provider preempts low-priority
// nodes at random; runs on them see attempts end with reason Preempted,
// and a run preempted more than 3 times ends Failed saying so. (A minute
// of work with a preemption every 300 ms on average never finishes.)
func TestRandomPreemption(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up("--local-preempt-every", "300ms")
	e.ok("compute", "create", "cluster", "spot", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1", "--vm-priority", "lowpriority")
	id := e.submit2("spot", "--", "sleep", "60")
	run := e.waitRun(id)
	if run.Status != api.RunFailed || run.StatusReason != "Preempted" || !strings.Contains(run.Error, "preempted 4 times, the limit") {
		t.Fatalf("a run preempted past the limit: %s %q %q, want Failed, Preempted and an error that says 4 times", run.Status, run.StatusReason, run.Error)
	}
	if len(run.Attempts) != 4 {
		t.Fatalf("%d attempts, want 4 (the first and 3 restarts): %+v", len(run.Attempts), run.Attempts)
	}
	for i, a := range run.Attempts {
		if a.Reason != "Preempted" || a.Status != api.RunFailed {
			t.Errorf("attempt %d ended %s %q, want Failed Preempted", i+1, a.Status, a.Reason)
		}
	}
	if !strings.Contains(s.Logs(), "random preemption") {
		t.Error("the server did not log the random preemption")
	}
}

// Local nodes' loopback addresses are unique among the live nodes, the
// ones a restarted server adopted included: a new node never gets an
// adopted node's address.
func TestLocalNodeAddressesUniqueAfterRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up()
	ready := func(name string) api.Node {
		var n []api.Node
		eventually(t, 20*time.Second, "a ready node in "+name, func() bool {
			n = e.nodes(name)
			return len(n) == 1 && n[0].State == "idle" && n[0].Address != ""
		})
		return n[0]
	}
	e.ok("compute", "create", "cluster", "first", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1", "--min-nodes", "1")
	adopted := ready("first")
	s.kill()
	e.up()
	e.ok("compute", "create", "cluster", "second", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1", "--min-nodes", "1")
	fresh := ready("second")
	if again := e.nodes("first"); len(again) != 1 || again[0].ID != adopted.ID {
		t.Fatalf("the node of first was not adopted: %+v", again)
	}
	if fresh.Address == adopted.Address {
		t.Errorf("a new node got %s, the address of the adopted node %s", fresh.Address, adopted.ID)
	}
}
