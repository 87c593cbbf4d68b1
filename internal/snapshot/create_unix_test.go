//go:build unix

package snapshot

import (
	"bytes"
	"net"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCreateSkipsSpecialFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	makeTree(t, dir, []node{{name: "a.txt", data: "a"}})
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var buf bytes.Buffer
	info, err := Create(dir, &buf, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a.txt"}, archiveNames(t, buf.Bytes())); diff != "" {
		t.Errorf("archived names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Info{Files: 1, Bytes: 1}, info); diff != "" {
		t.Errorf("info (-want +got):\n%s", diff)
	}
}
