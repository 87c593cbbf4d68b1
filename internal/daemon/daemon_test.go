package daemon

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/paddock-ml/paddock/internal/store/sqlite"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAndStat runs a server on dir until it is ready, and returns the
// modes of the given paths (relative to dir) while it serves, and its log.
func startAndStat(t *testing.T, dir string, paths ...string) (map[string]fs.FileMode, string) {
	t.Helper()
	t.Setenv("PADDOCK_CONFIG", filepath.Join(t.TempDir(), "config"))
	var logs syncBuffer
	modes := map[string]fs.FileMode{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	err := Run(ctx, Options{DataDir: dir, Listen: "127.0.0.1:0", NoLocalAgent: true,
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Ready: func(string) {
			for _, p := range paths {
				fi, err := os.Stat(filepath.Join(dir, p))
				if err != nil {
					t.Errorf("%s: %v", p, err)
					continue
				}
				modes[p] = fi.Mode().Perm()
			}
			cancel()
		}})
	// A server stopped this soon after its start may report its loops'
	// context.Canceled; what matters here is that it started.
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v\n%s", err, logs.String())
	}
	return modes, logs.String()
}

// A fresh data dir is the owner's only: the directory 0700, the database
// and the -wal and -shm files SQLite makes beside it 0600, whatever the
// umask.
func TestNewDataDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	modes, _ := startAndStat(t, dir, ".", dbFile, dbFile+"-wal", dbFile+"-shm", adminTokenFile, keyFile, "artifacts", "artifacts/outputs")
	for p, m := range modes {
		if m&0o077 != 0 {
			t.Errorf("%s has mode %04o: readable by others", p, m)
		}
	}
}

// A data dir an earlier version left readable by all is tightened at
// start, with a warning in the log: the database and its -wal and -shm,
// the directory, and outputs kept with the modes the run gave them.
func TestOldDataDirIsMadePrivateAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	out := filepath.Join(dir, "artifacts", "outputs", "run-old", "sub")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "model.bin"), []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A database made by SQLite itself under a 022 umask: 0644.
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, p := range []string{dir, filepath.Join(dir, dbFile), filepath.Join(dir, "artifacts"), filepath.Join(dir, "artifacts", "outputs"),
		filepath.Join(dir, "artifacts", "outputs", "run-old"), out, filepath.Join(out, "model.bin")} {
		fi, _ := os.Stat(p)
		os.Chmod(p, fi.Mode().Perm()|0o055)
	}
	modes, log := startAndStat(t, dir, ".", dbFile, dbFile+"-wal", dbFile+"-shm", "artifacts",
		"artifacts/outputs/run-old", "artifacts/outputs/run-old/sub", "artifacts/outputs/run-old/sub/model.bin")
	for p, m := range modes {
		if m&0o077 != 0 {
			t.Errorf("%s has mode %04o after start: readable by others", p, m)
		}
	}
	if m := modes["artifacts/outputs/run-old/sub/model.bin"]; m != 0o600 {
		t.Errorf("model.bin has mode %04o, want 0600 (the owner's bits kept)", m)
	}
	if !strings.Contains(log, "tightened the permissions") || !strings.Contains(log, dbFile) {
		t.Errorf("the log does not say what was tightened:\n%s", log)
	}
}
