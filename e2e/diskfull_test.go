package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// smallDisk mounts a tmpfs of the given size for a data dir (root only).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root: `sudo bash scripts/test.sh`")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// spew prints about n MB of log, fast.
func spew(mb int) string {
	return "import sys\nline = 'x' * 1000\nfor i in range(" + strconv.Itoa(mb*1000) + "):\n    sys.stdout.write(line + ' ' + str(i) + '\\n')\n"
}

// With the server's disk full, a run that logs fails with a reason
// (LogStorageFull) instead of running on silently, and cancelling another
// run still returns promptly.
func TestDiskFullWhileARunLogs(t *testing.T) {
	e := newEnv(t)
	e.dataDir = filepath.Join(smallDisk(t, "40m"), "data")
	srv := e.up("--max-run-log-mb", "0")
	sleeper := e.submit("--", "sleep", "300")
	eventually(t, 20*time.Second, "the sleeper to run", func() bool { return e.show(sleeper).Status == api.RunRunning })

	src := filepath.Join(e.home, "spew")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "spew.py", spew(200))
	id := e.submit("--source", src, "--", "python3", "spew.py")
	var r api.Run
	deadline := time.Now().Add(90 * time.Second)
	for r = e.show(id); !r.Status.Terminal(); r = e.show(id) {
		if time.Now().After(deadline) {
			agentLog, _ := os.ReadFile(filepath.Join(e.dataDir, "local-agent", "agent.log"))
			t.Fatalf("the spewing run did not end: %s %q\nserver:\n%s\nagent:\n%s", r.Status, r.StatusReason, srv.Logs(), agentLog)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.Status != api.RunFailed || r.StatusReason == "" && !strings.Contains(r.Error, "could not store the run's log") {
		t.Errorf("the spewing run: %s %q %q", r.Status, r.StatusReason, r.Error)
	}
	if !strings.Contains(r.Error, "disk is full") {
		t.Errorf("the run's error should say why: %q", r.Error)
	}
	start := time.Now()
	c := e.run("run", "cancel", sleeper)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("cancel took %s", took)
	}
	if c.code != 0 || !strings.Contains(c.stdout, "Canceled") {
		t.Errorf("cancel on a full disk: exit %d %q %q", c.code, c.stdout, c.stderr)
	}
}

// A run's log stops at --max-run-log-mb with a marker; the run completes.
func TestRunLogLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up("--max-run-log-mb", "1")
	src := filepath.Join(e.home, "spew")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "spew.py", spew(3))
	id := e.submit("--source", src, "--", "python3", "spew.py")
	if r := e.waitRun(id); r.Status != api.RunCompleted {
		t.Fatalf("status %s %q", r.Status, r.Error)
	}
	logs := e.run("run", "logs", id) // the marker is on stderr
	if n := len(logs.stdout); n > 1100<<10 || n < 900<<10 {
		t.Errorf("the log is %d bytes, want about 1 MiB", n)
	}
	if !strings.Contains(logs.stderr, "reached its limit of 1 MiB") || strings.Contains(logs.stdout, "x 2999\n") {
		t.Errorf("the log does not end with the marker: ...%s\nstderr: %s", logs.stdout[max(0, len(logs.stdout)-300):], logs.stderr)
	}
}
