package e2e

import (
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
)

// fields reads "k=v k=v" into a map.
func fields(line string) map[string]string {
	f := map[string]string{}
	for _, kv := range strings.Fields(line) {
		k, v, _ := strings.Cut(kv, "=")
		f[k] = v
	}
	return f
}

// --process-count-per-node starts that many processes on the node, each
// with its own RANK and LOCAL_RANK and its lines marked with its rank; one
// failing stops the others and fails the run with its exit code.
func TestProcessesPerNode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	id := e.submit("--process-count-per-node", "3", "--distribution", "pytorch", "--", "sh", "-c",
		`echo "rank=$RANK local=$LOCAL_RANK world=$WORLD_SIZE lws=$LOCAL_WORLD_SIZE master=$MASTER_ADDR port=$MASTER_PORT"`)
	if run := e.waitRun(id); run.Status != api.RunCompleted {
		t.Fatalf("run: %s %q %q", run.Status, run.StatusReason, run.Error)
	}
	lines := strings.Split(strings.TrimSpace(e.ok("run", "logs", id)), "\n")
	sort.Strings(lines)
	if len(lines) != 3 {
		t.Fatalf("want one line per process:\n%s", strings.Join(lines, "\n"))
	}
	for i, l := range lines {
		prefix := fmt.Sprintf("[rank %d] ", i)
		f := fields(strings.TrimPrefix(l, prefix))
		if !strings.HasPrefix(l, prefix) || f["rank"] != fmt.Sprint(i) || f["local"] != fmt.Sprint(i) || f["world"] != "3" ||
			f["lws"] != "3" || f["master"] != "127.0.0.1" || f["port"] == "" {
			t.Errorf("process %d: %q", i, l)
		}
	}

	id = e.submit("--process-count-per-node", "2", "--", "sh", "-c", `if [ "$LOCAL_RANK" = 1 ]; then exit 5; fi; sleep 60`)
	run := e.waitRun(id)
	if run.Status != api.RunFailed || run.ExitCode == nil || *run.ExitCode != 5 {
		t.Fatalf("a failing process: %s exit %v %q", run.Status, run.ExitCode, run.Error)
	}
	// the launcher's own line is on the run's stderr
	if r := e.run("run", "logs", id); !strings.Contains(r.stderr, "[paddock] rank 1 exited with code 5; stopping the other processes") {
		t.Errorf("the log does not say which process failed:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
}

// MpiConfiguration's runs start through a real mpirun (OpenMPI): a
// 2-node × 2-process hello world on a cluster, the second node's
// processes launched through its agent, in its sandbox.
func TestMPIHelloWorld(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("needs OpenMPI's mpirun (scripts/deps.sh mpi installs it)")
	}
	e := newEnv(t)
	e.up()
	e.ok("compute", "create", "cluster", "mpi", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2")
	id := e.submit2("mpi", "--nodes", "2", "--process-count-per-node", "2", "--distribution", "mpi", "--", "sh", "-c",
		`echo "hello rank=$OMPI_COMM_WORLD_RANK size=$OMPI_COMM_WORLD_SIZE local=$OMPI_COMM_WORLD_LOCAL_RANK node=$NODE_RANK"`)
	run := e.waitRun(id)
	logs := e.ok("run", "logs", id)
	if run.Status != api.RunCompleted || len(run.Attempts) != 1 || len(run.Attempts[0].Nodes) != 2 {
		t.Fatalf("mpi run: %s %q %q\n%s", run.Status, run.StatusReason, run.Error, logs)
	}
	// (mpirun sometimes joins two lines of one remote node's ranks, from
	// OpenMPI's output forwarding: read the greetings, not the lines)
	hello := regexp.MustCompile(`hello rank=\S+ size=\S+ local=\S+ node=\d+`).FindAllString(logs, -1)
	sort.Strings(hello)
	want := []string{
		"hello rank=0 size=4 local=0 node=0", "hello rank=1 size=4 local=1 node=0",
		"hello rank=2 size=4 local=0 node=1", "hello rank=3 size=4 local=1 node=1",
	}
	if strings.Join(hello, "\n") != strings.Join(want, "\n") {
		t.Fatalf("mpirun's processes said:\n%s\nwant:\n%s\nlog:\n%s", strings.Join(hello, "\n"), strings.Join(want, "\n"), logs)
	}
}
