package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// slurmConf finds the Slurm cluster scripts/dev-slurm.sh started (CI starts
// it); without one the Slurm tests skip, except in CI where they fail.
func slurmConf(t *testing.T) string {
	conf := os.Getenv("SLURM_CONF")
	if conf == "" {
		conf = "/tmp/paddock-slurm/etc/slurm.conf"
	}
	cmd := exec.Command("scontrol", "ping")
	cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "UP") {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Slurm cluster at %s (.ci/run starts one with scripts/dev-slurm.sh): %v %s", conf, err, out)
		}
		t.Skip("no Slurm cluster: as root, `bash scripts/test.sh` starts one (or `bash scripts/dev-slurm.sh start`)")
	}
	return conf
}

func squeue(t *testing.T, conf, user string) string {
	cmd := exec.Command("squeue", "-h", "-u", user, "-o", "%i %T")
	cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
	out, _ := cmd.CombinedOutput()
	return strings.TrimSpace(string(out))
}

// A Slurm cluster attached through its login node (a real sshd on
// loopback, a real slurmctld/slurmd): runs become Slurm jobs whose logs,
// outputs and exit codes come back; cancel reaches scancel; nothing is
// left in the queue.
func TestSlurmTarget(t *testing.T) {
	conf := slurmConf(t)
	e := newEnv(t)
	e.up()
	port := freeLoopbackPort(t)
	sd := startSSHD(t, t.TempDir(), port, false)
	os.RemoveAll(filepath.Join(homeOf(keyUser), ".paddock-agent"))
	attach := []string{"compute", "attach", "slurm", "hpc", "--address", "127.0.0.1", "--ssh-port", strconv.Itoa(port),
		"--username", keyUser, "--private-key-file", sd.keyFile, "--slurm-conf", conf}
	if r := e.run(append(attach, "--partition", "nope")...); r.code != 2 || !strings.Contains(r.stderr, `partition "nope" does not exist`) {
		t.Fatalf("attach with a missing partition: exit %d %q", r.code, r.stderr)
	}
	if r := e.run("compute", "attach", "slurm", "hpc", "--rest-url", "unix:///run/slurmrestd.sock"); r.code != 2 || !strings.Contains(r.stderr, "slurmrestd is not supported") {
		t.Errorf("attach through slurmrestd: exit %d %q", r.code, r.stderr)
	}
	c := decodeJSON[api.Compute](t, e.ok(append(attach, "--partition", "debug", "-o", "json")...))
	var st struct {
		Reachable  bool
		Partitions []struct{ Name string }
	}
	jsonInto(t, c.Status, &st)
	if !st.Reachable || len(st.Partitions) == 0 || st.Partitions[0].Name != "debug" {
		t.Fatalf("attached: %+v", st)
	}

	src := filepath.Join(e.home, "src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "train.py", "import os\nprint('slurm job', os.environ.get('SLURM_JOB_ID'))\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/model.txt', 'w').write('from slurm')\n")
	r := e.run("run", "submit", "--compute", "hpc", "--source", src, "--stream", "--", "python3", "train.py")
	if r.code != 0 || !strings.Contains(r.stdout, "slurm job ") || strings.Contains(r.stdout, "slurm job None") {
		t.Fatalf("a run as a Slurm job: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	runs := decodeJSON[[]api.Run](t, e.ok("run", "list", "-o", "json"))
	dl := filepath.Join(e.home, "dl")
	e.ok("run", "download", runs[0].ID, "--to", dl)
	if data, _ := os.ReadFile(filepath.Join(dl, "model.txt")); string(data) != "from slurm" {
		t.Errorf("outputs: %q", data)
	}
	if r := e.run("run", "submit", "--compute", "hpc", "--stream", "--", "sh", "-c", "exit 4"); r.code != 4 {
		t.Errorf("a failing Slurm run: exit %d %q", r.code, r.stderr)
	}

	marker := fmt.Sprintf("paddock-slurm-%d", time.Now().UnixNano())
	id := e.submit2("hpc", "--", "python3", "-c", "import time; time.sleep(120)", marker)
	eventually(t, 30*time.Second, "the Slurm run to start", func() bool { return e.show(id).Status == api.RunRunning })
	e.ok("run", "cancel", id)
	if r := e.show(id); r.Status != api.RunCanceled {
		t.Fatalf("cancel: %s", r.Status)
	}
	eventually(t, 30*time.Second, "no job of ours left in the Slurm queue", func() bool { return squeue(t, conf, keyUser) == "" })
	if left := pidsWith(marker); len(left) > 0 {
		t.Errorf("the run's process survived the cancel: %v", left)
	}
	e.ok("compute", "detach", "hpc")
	eventually(t, 10*time.Second, "~/.paddock-agent to be removed", func() bool {
		_, err := os.Stat(filepath.Join(homeOf(keyUser), ".paddock-agent"))
		return os.IsNotExist(err)
	})
}

// A cluster on the slurm provider gets its nodes as Slurm pilot jobs: it
// scales up for its runs and back down to zero, leaving no job behind.
func TestSlurmProviderCluster(t *testing.T) {
	conf := slurmConf(t)
	e := newEnv(t)
	srv := e.up()
	defer func() {
		if t.Failed() {
			t.Log(srv.Logs())
		}
	}()
	port := freeLoopbackPort(t)
	sd := startSSHD(t, t.TempDir(), port, false)
	os.RemoveAll(filepath.Join(homeOf(keyUser), ".paddock-agent"))
	e.ok("compute", "attach", "slurm", "hpc", "--address", "127.0.0.1", "--ssh-port", strconv.Itoa(port),
		"--username", keyUser, "--private-key-file", sd.keyFile, "--slurm-conf", conf)
	e.ok("compute", "create", "cluster", "on-slurm", "--vm-size", "STANDARD_D1_V2", "--max-nodes", "2",
		"--provider", "slurm", "--from", "hpc", "--idle-seconds-before-scaledown", "1")
	var ids []string
	for range 2 {
		ids = append(ids, e.submit2("on-slurm", "--", "sh", "-c", "echo job $SLURM_JOB_ID; sleep 1"))
	}
	maxNodes := 0
	for _, id := range ids {
		eventually(t, 90*time.Second, "run "+id+" to end", func() bool {
			maxNodes = max(maxNodes, len(e.nodes("on-slurm")))
			return e.show(id).Status.Terminal()
		})
		if r := e.show(id); r.Status != api.RunCompleted || !strings.HasPrefix(strings.TrimSpace(e.ok("run", "logs", id)), "job ") {
			t.Fatalf("run %s: %+v", id, r)
		}
	}
	if maxNodes < 1 || maxNodes > 2 {
		t.Errorf("peak %d nodes, want 1 or 2 (max_nodes 2)", maxNodes)
	}
	eventually(t, 30*time.Second, "scale-down to zero", func() bool { return len(e.nodes("on-slurm")) == 0 })
	eventually(t, 30*time.Second, "no pilot job left in the Slurm queue", func() bool { return squeue(t, conf, keyUser) == "" })
	e.ok("compute", "delete", "on-slurm")
	e.ok("compute", "detach", "hpc")
}

// A server killed while a run runs as a Slurm pilot job, and started again
// on another port: it adopts the pilot's node (its job still runs), tells
// its agent where the server listens now, and the run completes in its
// first attempt; nothing is left in the queue.
func TestSlurmRunSurvivesServerRestart(t *testing.T) {
	conf := slurmConf(t)
	e := newEnv(t)
	srv := e.up()
	port := freeLoopbackPort(t)
	sd := startSSHD(t, t.TempDir(), port, false)
	os.RemoveAll(filepath.Join(homeOf(keyUser), ".paddock-agent"))
	e.ok("compute", "attach", "slurm", "hpc", "--address", "127.0.0.1", "--ssh-port", strconv.Itoa(port),
		"--username", keyUser, "--private-key-file", sd.keyFile, "--slurm-conf", conf, "--partition", "debug")
	id := e.submit2("hpc", "--", "sh", "-c", "echo before; sleep 4; echo after")
	eventually(t, 60*time.Second, "the Slurm run to run", func() bool { return e.show(id).Status == api.RunRunning })
	e.restartMidRun(srv, id)
	eventually(t, 30*time.Second, "no job of ours left in the Slurm queue", func() bool { return squeue(t, conf, keyUser) == "" })
	e.ok("compute", "detach", "hpc")
	eventually(t, 10*time.Second, "~/.paddock-agent to be removed", func() bool {
		_, err := os.Stat(filepath.Join(homeOf(keyUser), ".paddock-agent"))
		return os.IsNotExist(err)
	})
}
