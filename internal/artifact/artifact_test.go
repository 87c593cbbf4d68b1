package artifact

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/snapshot"
)

// archive packs a tree of files (path → content, mode 0644, dirs 0755) as
// the agent does.
func archive(t *testing.T, files map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Dir(full), 0o755)
		os.Chmod(full, 0o644)
	}
	var buf bytes.Buffer
	if _, err := snapshot.Create(dir, &buf, snapshot.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Outputs are kept readable by the server's user only, whatever modes the
// run gave them; the owner's bits stay.
func TestOutputsAreKeptPrivate(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutOutputs("run-a", bytes.NewReader(archive(t, map[string]string{"model.bin": "w", "ckpt/1.pt": "c"}))); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(filepath.Join(s.dir, "outputs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %04o: readable by others", p, fi.Mode().Perm())
		}
		if d.Name() == "model.bin" && fi.Mode().Perm() != 0o600 {
			t.Errorf("model.bin has mode %04o, want 0600", fi.Mode().Perm())
		}
		return nil
	})
}

// A full disk and an exhausted quota are 507 InsufficientStorage with the
// cause kept for the log; other errors pass unchanged.
func TestStorageError(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		cause := fmt.Errorf("extracting %q: %w", "model.bin", &fs.PathError{Op: "write", Path: "/data/x", Err: errno})
		err := storageError(cause, "the outputs")
		var e *api.Error
		if !errors.As(err, &e) || e.Code != api.CodeInsufficientStorage || !errors.Is(err, errno) {
			t.Errorf("%v: %v", errno, err)
		}
		if strings.Contains(e.Message, "/data/x") {
			t.Errorf("the user's message names a server path: %s", e.Message)
		}
	}
	other := errors.New("disk on fire")
	if err := storageError(other, "the outputs"); err != other {
		t.Errorf("another error became %v", err)
	}
}
