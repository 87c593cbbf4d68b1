package sqlite

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// tinyDisk mounts a tmpfs of the given size (root only).
func tinyDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root: `sudo bash scripts/test.sh`")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file until the disk is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			return
		}
	}
}

func manyRuns(n, from int) []store.Run {
	var runs []store.Run
	for i := range n {
		id := fmt.Sprintf("run-%d", from+i)
		runs = append(runs, store.Run{Run: api.Run{ID: id, Compute: "local", Status: api.RunQueued, CreatedBy: "ana",
			CreatedAt: time.Now().UTC(), Command: []string{strings.Repeat("x", 2000)}}, Workspace: "ws", Seq: int64(from + i)})
	}
	return runs
}

// With the disk full, log lines are refused with 507 and state writes
// still go through, on the reserve; the reserve comes back with space.
func TestReserveKeepsStateWritable(t *testing.T) {
	dir := tinyDisk(t, "24m")
	s, err := Open(t.Context(), filepath.Join(dir, "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, "p.db.reserve")); err != nil {
		t.Fatalf("no reserve: %v", err)
	}
	if err := s.EnsureWorkspace(t.Context(), "ws"); err != nil {
		t.Fatal(err)
	}
	fill(t, dir)
	// State needing new pages: a few hundred KiB of runs.
	if err := s.SaveBatch(t.Context(), manyRuns(200, 0), nil, nil); err != nil {
		t.Fatalf("SaveBatch on a full disk: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p.db.reserve")); !os.IsNotExist(err) {
		t.Errorf("the reserve was not used (%v)", err)
	}
	_, err = s.AppendLogs(t.Context(), "run-0", 1, 0, []store.LogLine{{ASeq: 1, Stream: "stdout", Time: time.Now(), Text: "x"}})
	if !errors.Is(err, api.ErrInsufficientStorage) {
		t.Errorf("a log line on a full disk: %v, want InsufficientStorage", err)
	}
	if err := s.AddMetrics(t.Context(), "run-0", []api.Metric{{Name: "loss", Value: 1}}); !errors.Is(err, api.ErrInsufficientStorage) {
		t.Errorf("a metric on a full disk: %v, want InsufficientStorage", err)
	}
	// Space comes back: within a second, logs are taken and the reserve held again.
	os.Remove(filepath.Join(dir, "filler"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = s.AppendLogs(t.Context(), "run-0", 1, 0, []store.LogLine{{ASeq: 1, Stream: "stdout", Time: time.Now(), Text: "x"}})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("logs after space came back: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p.db.reserve")); err != nil {
		t.Errorf("the reserve was not made again: %v", err)
	}
}
