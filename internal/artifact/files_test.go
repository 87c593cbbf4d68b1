package artifact

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/snapshot"
)

func readRunFile(t *testing.T, s *Store, run, p string) string {
	t.Helper()
	f, _, _, err := s.OpenRunFile(run, p)
	if err != nil {
		t.Fatalf("OpenRunFile(%s): %v", p, err)
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	return string(b)
}

// Uploaded files sit beside the outputs: listed together, an output
// winning where both name a file, and the agent's next outputs upload
// (which replaces the outputs) leaves them alone.
func TestRunFilesBesideOutputs(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for p, content := range map[string]string{"outputs/model.pkl": "uploaded model", "outputs/images/loss.png": "png", "notes.txt": "n"} {
		if _, err := s.PutRunFile("run-a", p, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := s.PutRunFile("run-a", "notes.txt", strings.NewReader("second")); err != nil || f.Size != 6 || f.Origin != api.FileUploaded {
		t.Fatalf("replacing an uploaded file = %+v, %v", f, err)
	}
	if _, err := s.PutOutputs("run-a", bytes.NewReader(archive(t, map[string]string{"model.pkl": "agent model", "log.txt": "l"}))); err != nil {
		t.Fatal(err)
	}
	files, err := s.RunFiles("run-a")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Path+":"+f.Origin)
	}
	want := "notes.txt:uploaded outputs/images/loss.png:uploaded outputs/log.txt:outputs outputs/model.pkl:outputs"
	if strings.Join(got, " ") != want {
		t.Fatalf("RunFiles = %q, want %q", strings.Join(got, " "), want)
	}
	if c := readRunFile(t, s, "run-a", "outputs/model.pkl"); c != "agent model" {
		t.Errorf("outputs/model.pkl = %q, want the agent's", c)
	}
	if c := readRunFile(t, s, "run-a", "notes.txt"); c != "second" {
		t.Errorf("notes.txt = %q", c)
	}
	if c := readRunFile(t, s, "run-a", "outputs/images/loss.png"); c != "png" {
		t.Errorf("outputs/images/loss.png = %q", c)
	}
	if _, _, _, err := s.OpenRunFile("run-a", "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("a missing file: %v, want NotFound", err)
	}
	if files, err := s.RunFiles("run-none"); err != nil || len(files) != 0 {
		t.Errorf("RunFiles of a run without files = %v, %v", files, err)
	}
}

func TestRunFilePathsAndLimits(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a/", ".", "a\\b", "a\x00b", strings.Repeat("a", MaxRunFilePath+1)} {
		if _, err := s.PutRunFile("run-a", p, strings.NewReader("x")); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("PutRunFile(%q) = %v, want Invalid", p, err)
		}
	}
	if _, err := s.PutRunFile("run-a", "dir/file", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRunFile("run-a", "dir", strings.NewReader("x")); !errors.Is(err, api.ErrConflict) {
		t.Errorf("a file over a folder: %v, want Conflict", err)
	}
	if _, err := s.PutRunFile("run-a", "dir/file/deeper", strings.NewReader("x")); !errors.Is(err, api.ErrConflict) {
		t.Errorf("a folder over a file: %v, want Conflict", err)
	}
	s.OutputLimits = snapshot.Limits{MaxBytes: 10, MaxFiles: 2}
	if _, err := s.PutRunFile("run-b", "a", strings.NewReader("12345")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRunFile("run-b", "b", strings.NewReader("123456")); !errors.Is(err, api.ErrTooLarge) {
		t.Errorf("over the bytes: %v, want TooLarge", err)
	}
	if _, err := s.PutRunFile("run-b", "a", strings.NewReader("1234567890")); err != nil {
		t.Errorf("replacing within the bytes: %v", err)
	}
	if _, err := s.PutRunFile("run-b", "c", strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRunFile("run-b", "d", strings.NewReader("")); !errors.Is(err, api.ErrTooLarge) {
		t.Errorf("over the count: %v, want TooLarge", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.dir, "tmp")); len(entries) != 0 {
		t.Errorf("refused uploads left %d temporary files", len(entries))
	}
}

// A link in the outputs that points out of them is not followed.
func TestRunFileLinksStayInside(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("s3cret"), 0o600)
	dir := s.OutputsDir("run-a")
	os.MkdirAll(dir, 0o700)
	if err := os.Symlink(secret, filepath.Join(dir, "leak")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.OpenRunFile("run-a", "outputs/leak"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("a link out of the outputs: %v, want NotFound", err)
	}
}
