package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
)

// A typo in a command fails with exit 2 at every level, with the contract's
// message; it used to print help and exit 0 (1 at the top).
func TestUnknownCommandsExit2(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		args    []string
		unknown string // the command the error names, under its group
	}{
		{[]string{"frobnicate"}, `"frobnicate" for "paddock"`},
		{[]string{"compute", "frobnicate"}, `"frobnicate" for "paddock compute"`},
		{[]string{"compute", "attach", "lake", "x"}, `"lake" for "paddock compute attach"`},
		{[]string{"compute", "create", "clustre", "x"}, `"clustre" for "paddock compute create"`},
		{[]string{"run", "frobnicate", "x"}, `"frobnicate" for "paddock run"`},
		{[]string{"quota", "frobnicate"}, `"frobnicate" for "paddock quota"`},
	} {
		r := e.run(tc.args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "error: unknown command "+tc.unknown) {
			t.Errorf("paddock %s: exit %d, stderr %q; want exit 2 and unknown command %s", strings.Join(tc.args, " "), r.code, r.stderr, tc.unknown)
		}
	}
}

const badLinksPy = `import os
os.makedirs("outputs/data", exist_ok=True)
open("outputs/model.txt", "w").write("new weights")
open("outputs/data/x.txt", "w").write("x")
os.symlink("/etc/passwd", "outputs/passwd")
os.symlink("missing.ckpt", "outputs/latest")
os.symlink("model.txt", "outputs/good")
`

// The hostile test's findings, end to end: a run whose outputs/ holds bad
// symlinks keeps the rest of its outputs (it lost them all); a source with
// a bad symlink is submitted with a warning; and `run download` never
// deletes or overwrites local files unless --overwrite (it replaced an
// existing data/ whole).
func TestBadSymlinksAndDownloadsThatKeepLocalFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	src := filepath.Join(e.home, "src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "train.py", badLinksPy)
	if err := os.Symlink("/etc/shadow", filepath.Join(src, "shadow")); err != nil {
		t.Fatal(err)
	}
	r := e.run("run", "submit", "--compute", "local", "--source", src, "-o", "json", "--", "python3", "train.py")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: --source "+src+": skipped shadow: symlink shadow points to the absolute path /etc/shadow") {
		t.Fatalf("submit: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	id := decodeJSON[api.Run](t, r.stdout).ID
	run := e.waitRun(id)
	var paths []string
	for _, f := range run.Outputs {
		paths = append(paths, f.Path)
	}
	if run.Status != api.RunCompleted || !slices.Equal(paths, []string{"data/x.txt", "model.txt"}) {
		t.Fatalf("run %s (%s %s): outputs %q, want data/x.txt and model.txt", run.Status, run.StatusReason, run.Error, paths)
	}

	dl := filepath.Join(e.home, "dl")
	os.MkdirAll(filepath.Join(dl, "data"), 0o755)
	writeFile(t, filepath.Join(dl, "data"), "mine.txt", "mine")
	writeFile(t, dl, "model.txt", "old weights")
	r = e.run("run", "download", id, "--to", dl)
	if r.code != 4 || !strings.Contains(r.stderr, filepath.Join(dl, "model.txt")+" already exists") {
		t.Fatalf("download over an existing file: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dl, "data", "x.txt")); err == nil {
		t.Error("a refused download wrote data/x.txt")
	}
	e.ok("run", "download", id, "--to", dl, "--overwrite")
	for name, want := range map[string]string{"model.txt": "new weights", "data/x.txt": "x", "data/mine.txt": "mine", "good": "new weights"} {
		if got, err := os.ReadFile(filepath.Join(dl, name)); err != nil || string(got) != want {
			t.Errorf("after --overwrite, %s = %q (%v), want %q", name, got, err, want)
		}
	}
	if entries, _ := os.ReadDir(dl); len(entries) != 3 {
		t.Errorf("the download left %d entries in %s, want data, good and model.txt", len(entries), dl)
	}
}
