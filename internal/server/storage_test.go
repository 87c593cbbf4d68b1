package server

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/artifact"
	"github.com/paddock-ml/paddock/internal/snapshot"
)

// smallDisk mounts a 1 MiB tmpfs for the test (it needs root).
func smallDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mounting a 1 MiB tmpfs needs root: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// files lists the regular files under dir.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return err
	})
	return out
}

// A snapshot or outputs upload the server's disk cannot hold is answered
// 507 InsufficientStorage with the standard error body (it was a 500), and
// leaves no partial file; once space is there again uploads work.
func TestFullDiskIsInsufficientStorage(t *testing.T) {
	disk := smallDisk(t)
	s := newTestServer(t)
	art, err := artifact.New(disk)
	if err != nil {
		t.Fatal(err)
	}
	s.api.art = art

	big := make([]byte, 2<<20)
	rand.Read(big)
	rec := s.serve(request("PUT", "/api/v1/workspaces/default/snapshots", s.token, bytes.NewReader(big)))
	if e := errorOf(t, rec, http.StatusInsufficientStorage); e.Code != api.CodeInsufficientStorage {
		t.Errorf("snapshot: error %+v", e)
	}
	if left := files(t, disk); len(left) != 0 {
		t.Errorf("a refused snapshot left %q", left)
	}

	nodeToken := s.addNode("node-a")
	run := s.placedRun("node-a", "")
	tree := t.TempDir()
	os.WriteFile(filepath.Join(tree, "model.bin"), make([]byte, 2<<20), 0o644) // compresses to little, unpacks to 2 MiB
	var outputs bytes.Buffer
	if _, err := snapshot.Create(tree, &outputs, snapshot.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/api/v1/agent/runs/%s/attempts/%d/outputs", run.ID, run.Attempt)
	rec = s.serve(request("PUT", path, nodeToken, bytes.NewReader(outputs.Bytes())))
	if e := errorOf(t, rec, http.StatusInsufficientStorage); e.Code != api.CodeInsufficientStorage {
		t.Errorf("outputs: error %+v", e)
	}
	if left := files(t, disk); len(left) != 0 {
		t.Errorf("refused outputs left %q", left)
	}

	rec = s.serve(request("PUT", "/api/v1/workspaces/default/snapshots", s.token, bytes.NewReader(big[:1000])))
	if rec.Code != http.StatusCreated {
		t.Errorf("a small snapshot after the refusals: %d %s", rec.Code, rec.Body)
	}
}
