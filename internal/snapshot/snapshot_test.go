package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// node is one path of a test tree. A name ending in "/" is a directory; a
// non-empty link makes a symlink.
type node struct {
	name string
	data string
	perm fs.FileMode
	link string
}

// makeTree writes nodes under dir and gives every file and directory a
// fixed mtime, so trees can be compared after a round trip.
func makeTree(t *testing.T, dir string, nodes []node) {
	t.Helper()
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	var dirs []string
	for _, n := range nodes {
		p := filepath.Join(dir, filepath.FromSlash(strings.TrimSuffix(n.name, "/")))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case n.link != "":
			if err := os.Symlink(n.link, p); err != nil {
				t.Fatal(err)
			}
			continue
		case strings.HasSuffix(n.name, "/"):
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, p)
			continue
		}
		perm := n.perm
		if perm == 0 {
			perm = 0o644
		}
		if err := os.WriteFile(p, []byte(n.data), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil { // beat the umask
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	// Directories last, deepest first, after their contents are written.
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != dir {
			dirs = append(dirs, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if err := os.Chtimes(d, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

// fileState is what a round trip must keep of one path.
type fileState struct {
	Mode  fs.FileMode
	MTime time.Time
	Data  string
	Link  string
}

// readTree records every path under dir.
func readTree(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	got := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st := fileState{Mode: fi.Mode()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			st.Link, err = os.Readlink(p)
			st.Mode = fs.ModeSymlink // symlink permission bits are not meaningful
		case fi.Mode().IsRegular():
			var b []byte
			b, err = os.ReadFile(p)
			st.Data = string(b)
			st.MTime = fi.ModTime().UTC()
		default:
			st.MTime = fi.ModTime().UTC()
		}
		got[filepath.ToSlash(rel)] = st
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// archiveNames lists the entry names of a tar.gz.
func archiveNames(t *testing.T, data []byte) []string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		nodes []node
	}{
		{"empty directory", nil},
		{"project", []node{
			{name: "train.py", data: "print('hi')\n"},
			{name: "run.sh", data: "#!/bin/sh\necho go\n", perm: 0o755},
			{name: "secret.env", data: "TOKEN=x\n", perm: 0o600},
			{name: "empty/"},
			{name: "nested/deep/er/config.yaml", data: "lr: 0.1\n"},
			{name: "nested/deep/er/zero.bin"},
			{name: "latest", link: "nested/deep"},
			{name: "nested/up", link: "../train.py"},
		}},
		{"long names", []node{
			{name: strings.Repeat("d", 120) + "/" + strings.Repeat("f", 200), data: "x"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, dst := t.TempDir(), t.TempDir()
			makeTree(t, src, tc.nodes)
			var buf bytes.Buffer
			cinfo, err := Create(src, &buf, Limits{})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			einfo, err := Extract(bytes.NewReader(buf.Bytes()), filepath.Join(dst, "out"), Limits{})
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if diff := cmp.Diff(cinfo, einfo); diff != "" {
				t.Errorf("Create and Extract report differently (-create +extract):\n%s", diff)
			}
			want := readTree(t, src)
			if cinfo.Files != len(want) {
				t.Errorf("Create reported %d files, tree has %d", cinfo.Files, len(want))
			}
			if diff := cmp.Diff(want, readTree(t, filepath.Join(dst, "out"))); diff != "" {
				t.Errorf("extracted tree differs (-src +extracted):\n%s", diff)
			}
		})
	}
}

func TestCreateIgnore(t *testing.T) {
	t.Parallel()
	tree := []node{
		{name: "a.ckpt"}, {name: "keep.ckpt"}, {name: "main.py"}, {name: "sub/b.ckpt"},
		{name: "sub/keep.ckpt"}, {name: "sub/data/x.bin"}, {name: "data/y.bin"},
		{name: "data/keep.txt"}, {name: "other/data"}, {name: "build/out.o"},
		{name: "src/build/gen.go"}, {name: "__pycache__/m.pyc"}, {name: "src/pkg/__pycache__/n.pyc"},
		{name: ".hidden"}, {name: "notes.log"},
	}
	tests := []struct {
		name   string
		ignore string
		want   []string // archived entry names, besides .paddockignore
	}{
		{"no rules", "", []string{
			".hidden", "__pycache__/", "__pycache__/m.pyc", "a.ckpt", "build/", "build/out.o",
			"data/", "data/keep.txt", "data/y.bin", "keep.ckpt", "main.py", "notes.log",
			"other/", "other/data", "src/", "src/build/", "src/build/gen.go", "src/pkg/",
			"src/pkg/__pycache__/", "src/pkg/__pycache__/n.pyc", "sub/", "sub/b.ckpt",
			"sub/data/", "sub/data/x.bin", "sub/keep.ckpt",
		}},
		{"glob at any depth", "*.ckpt\n*.pyc\n", []string{
			".hidden", "__pycache__/", "build/", "build/out.o",
			"data/", "data/keep.txt", "data/y.bin", "main.py", "notes.log",
			"other/", "other/data", "src/", "src/build/", "src/build/gen.go", "src/pkg/",
			"src/pkg/__pycache__/", "sub/", "sub/data/", "sub/data/x.bin",
		}},
		{"directory pattern skips files of that name", "data/\n", []string{
			".hidden", "__pycache__/", "__pycache__/m.pyc", "a.ckpt", "build/", "build/out.o",
			"keep.ckpt", "main.py", "notes.log", "other/", "other/data", "src/", "src/build/",
			"src/build/gen.go", "src/pkg/", "src/pkg/__pycache__/", "src/pkg/__pycache__/n.pyc",
			"sub/", "sub/b.ckpt", "sub/keep.ckpt",
		}},
		{"anchored", "/build\n", []string{
			".hidden", "__pycache__/", "__pycache__/m.pyc", "a.ckpt",
			"data/", "data/keep.txt", "data/y.bin", "keep.ckpt", "main.py", "notes.log",
			"other/", "other/data", "src/", "src/build/", "src/build/gen.go", "src/pkg/",
			"src/pkg/__pycache__/", "src/pkg/__pycache__/n.pyc", "sub/", "sub/b.ckpt",
			"sub/data/", "sub/data/x.bin", "sub/keep.ckpt",
		}},
		{"double star", "**/__pycache__\nsrc/**\n", []string{
			".hidden", "a.ckpt", "build/", "build/out.o",
			"data/", "data/keep.txt", "data/y.bin", "keep.ckpt", "main.py", "notes.log",
			"other/", "other/data", "src/", "sub/", "sub/b.ckpt",
			"sub/data/", "sub/data/x.bin", "sub/keep.ckpt",
		}},
		{"negation", "*.ckpt\n!keep.ckpt\n", []string{
			".hidden", "__pycache__/", "__pycache__/m.pyc", "build/", "build/out.o",
			"data/", "data/keep.txt", "data/y.bin", "keep.ckpt", "main.py", "notes.log",
			"other/", "other/data", "src/", "src/build/", "src/build/gen.go", "src/pkg/",
			"src/pkg/__pycache__/", "src/pkg/__pycache__/n.pyc", "sub/",
			"sub/data/", "sub/data/x.bin", "sub/keep.ckpt",
		}},
		{"negation inside a directory's contents", "/data/*\n!/data/keep.txt\n/[!.adkmnos]*\n/src/\n", []string{
			".hidden", "a.ckpt", "data/", "data/keep.txt", "keep.ckpt", "main.py", "notes.log",
			"other/", "other/data", "sub/", "sub/b.ckpt", "sub/data/", "sub/data/x.bin", "sub/keep.ckpt",
		}},
		{"excluded directory cannot be re-included", "/data/\n!/data/keep.txt\n", []string{
			".hidden", "__pycache__/", "__pycache__/m.pyc", "a.ckpt", "build/", "build/out.o",
			"keep.ckpt", "main.py", "notes.log",
			"other/", "other/data", "src/", "src/build/", "src/build/gen.go", "src/pkg/",
			"src/pkg/__pycache__/", "src/pkg/__pycache__/n.pyc", "sub/", "sub/b.ckpt",
			"sub/data/", "sub/data/x.bin", "sub/keep.ckpt",
		}},
		{"comments, blank lines, escapes", "# *.py\n\n   \n\t\n*.log   \n.*\n!\\#x\n", []string{
			"__pycache__/", "__pycache__/m.pyc", "a.ckpt", "build/", "build/out.o",
			"data/", "data/keep.txt", "data/y.bin", "keep.ckpt", "main.py",
			"other/", "other/data", "src/", "src/build/", "src/build/gen.go", "src/pkg/",
			"src/pkg/__pycache__/", "src/pkg/__pycache__/n.pyc", "sub/", "sub/b.ckpt",
			"sub/data/", "sub/data/x.bin", "sub/keep.ckpt",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			makeTree(t, dir, append([]node{{name: IgnoreFile, data: tc.ignore}}, tree...))
			var buf bytes.Buffer
			if _, err := Create(dir, &buf, Limits{}); err != nil {
				t.Fatal(err)
			}
			want := append([]string{IgnoreFile}, tc.want...)
			sort.Strings(want)
			got := archiveNames(t, buf.Bytes())
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("archived names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIgnoreMatcher(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rules string
		path  string
		isDir bool
		want  bool
	}{
		{"*.ckpt", "a/b/c.ckpt", false, true},
		{"*.ckpt", "a/b/c.ckpt.txt", false, false},
		{"data/", "data", true, true},
		{"data/", "data", false, false},
		{"data/", "x/data", true, true},
		{"/build", "build", false, true},
		{"/build", "x/build", true, false},
		{"docs/*.md", "docs/a.md", false, true},
		{"docs/*.md", "docs/sub/a.md", false, false},
		{"docs/*.md", "x/docs/a.md", false, false},
		{"**/logs", "logs", true, true},
		{"**/logs", "a/b/logs", true, true},
		{"a/**/b", "a/b", false, true},
		{"a/**/b", "a/x/y/b", false, true},
		{"a/**/b", "a/x/y/c", false, false},
		{"a/**", "a", true, false},
		{"a/**", "a/x", false, true},
		{"file?.txt", "file1.txt", false, true},
		{"file[0-9].txt", "filex.txt", false, false},
		{"file[!0-9].txt", "filex.txt", false, true},
		{"\\#lit", "#lit", false, true},
		{"\\!lit", "!lit", false, true},
		{"sp\\ ", "sp ", false, true},
		{"*.ckpt\n!keep.ckpt", "keep.ckpt", false, false},
		{"*.ckpt\n!keep.ckpt\n*.ckpt", "keep.ckpt", false, true},
		{"a//b", "a/b", false, true},
	}
	for _, tc := range tests {
		m, err := parseIgnore(tc.rules)
		if err != nil {
			t.Fatalf("parseIgnore(%q): %v", tc.rules, err)
		}
		if got := m.excluded(tc.path, tc.isDir); got != tc.want {
			t.Errorf("rules %q, path %q (dir %v): excluded = %v, want %v", tc.rules, tc.path, tc.isDir, got, tc.want)
		}
	}
	if _, err := parseIgnore("ok\n[unclosed\n"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad pattern: err = %v, want one naming line 2", err)
	}
}

func TestCreateDeterministic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	makeTree(t, dir, []node{
		{name: "z.txt", data: "z"}, {name: "a/b/c.txt", data: "c"}, {name: "a/a.txt", data: "a"},
		{name: "m/"}, {name: "link", link: "a/a.txt"}, {name: "run.sh", data: "x", perm: 0o755},
	})
	var one, two bytes.Buffer
	if _, err := Create(dir, &one, Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir, &two, Limits{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Error("two Creates of the same tree gave different bytes")
	}
	want := []string{"a/", "a/a.txt", "a/b/", "a/b/c.txt", "link", "m/", "run.sh", "z.txt"}
	if diff := cmp.Diff(want, archiveNames(t, one.Bytes())); diff != "" {
		t.Errorf("entry order (-want +got):\n%s", diff)
	}
}

func TestCreateLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		ignore     string
		lim        Limits
		wantMsg    string // %s is the directory
		wantPrefix bool   // wantMsg is only a prefix
	}{
		{"bytes", "", Limits{MaxBytes: 100},
			"directory %s is larger than the 100 B limit (it has 650 B); exclude files with a .paddockignore", false},
		{"bytes after ignore", "*.skip\n", Limits{MaxBytes: 100},
			"directory %s is larger than the 100 B limit (it has 157 B after .paddockignore); exclude files with a .paddockignore", false},
		{"files", "", Limits{MaxFiles: 3},
			"directory %s has more than the limit of 3 files, directories and symlinks (it has 5); exclude files with a .paddockignore", false},
		{"big tree", "", Limits{MaxBytes: 100 << 20, MaxFiles: 2},
			"directory %s has more than the limit of 2 files", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			nodes := []node{
				{name: "a.bin", data: strings.Repeat("a", 50)},
				{name: "sub/b.bin", data: strings.Repeat("b", 50)},
				{name: "sub/c.bin", data: strings.Repeat("c", 50)},
				{name: "x.skip", data: strings.Repeat("x", 500)},
			}
			if tc.ignore != "" {
				nodes = append(nodes, node{name: IgnoreFile, data: tc.ignore})
			}
			makeTree(t, dir, nodes)
			var buf bytes.Buffer
			_, err := Create(dir, &buf, tc.lim)
			var le *LimitError
			if !errors.As(err, &le) {
				t.Fatalf("Create: err = %v, want a *LimitError", err)
			}
			want := strings.Replace(tc.wantMsg, "%s", dir, 1)
			if got := err.Error(); got != want && !(tc.wantPrefix && strings.HasPrefix(got, want)) {
				t.Errorf("message:\n got %s\nwant %s", got, want)
			}
			if buf.Len() != 0 {
				t.Errorf("Create wrote %d bytes before failing on a limit", buf.Len())
			}
		})
	}
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ignored := filepath.Join(base, "ignored")
	makeTree(t, ignored, []node{
		{name: IgnoreFile, data: ".venv/\n"}, {name: ".venv/bin/python", link: "/usr/bin/python3"},
	})
	tests := []struct {
		dir  string
		want string // substring of the error; "" for success
	}{
		{filepath.Join(base, "missing"), "does not exist"},
		{file, "is not a directory"},
		{ignored, ""},
	}
	for _, tc := range tests {
		_, err := Create(tc.dir, io.Discard, Limits{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Create(%s): %v", tc.dir, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Create(%s): err = %v, want one containing %q", tc.dir, err, tc.want)
		}
	}
}

// The hostile test's finding: one bad symlink under outputs/ cost a run
// all its outputs. Create leaves out symlinks that are absolute, lead
// outside the directory (lexically or through other links), dangle or
// loop, lists each in Info.Skipped with the reason, and archives the rest.
func TestCreateSkipsBadSymlinks(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	makeTree(t, src, []node{
		{name: "model.pt", data: "weights"},
		{name: "ckpt/1.pt", data: "one"},
		{name: "latest", link: "ckpt/1.pt"},
		{name: "ckpt/up", link: "../model.pt"},
		{name: "abs", link: "/etc/passwd"},
		{name: "ckpt/escape", link: "../../secret"},
		{name: "gone", link: "ckpt/2.pt"},
		{name: "loop", link: "loop"},
		{name: "out", link: "."},
		{name: "z/through", link: "../out/../.."},
		{name: "z/via", link: "../abs"},
	})
	var buf bytes.Buffer
	info, err := Create(src, &buf, Limits{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	want := []string{"ckpt/", "ckpt/1.pt", "ckpt/up", "latest", "model.pt", "out", "z/"}
	if diff := cmp.Diff(want, archiveNames(t, buf.Bytes())); diff != "" {
		t.Errorf("archived (-want +got):\n%s", diff)
	}
	var skipped []string
	for _, s := range info.Skipped {
		skipped = append(skipped, s.String())
	}
	wantSkipped := []string{
		"skipped abs: symlink abs points to the absolute path /etc/passwd",
		"skipped ckpt/escape: symlink ckpt/escape points to ../../secret, outside the directory",
		"skipped gone: symlink gone points to ckpt/2.pt, which does not exist inside the directory",
		"skipped loop: symlink loop points to loop, which does not exist inside the directory",
		"skipped z/through: symlink z/through points to ../out/../.., which goes back up (..) after a name; only leading ../ is allowed",
		"skipped z/via: symlink z/via points to ../abs, which does not exist inside the directory",
	}
	if diff := cmp.Diff(wantSkipped, skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if info.Files != len(want) {
		t.Errorf("info.Files = %d, want %d", info.Files, len(want))
	}
	if _, err := Extract(bytes.NewReader(buf.Bytes()), filepath.Join(t.TempDir(), "x"), Limits{}); err != nil {
		t.Errorf("Extract of what Create wrote: %v", err)
	}
}

func TestDigest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"hello\n", "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"},
	}
	for _, tc := range tests {
		got, n, err := Digest(strings.NewReader(tc.in))
		if err != nil || got != tc.want || n != int64(len(tc.in)) {
			t.Errorf("Digest(%q) = %s, %d, %v; want %s, %d, nil", tc.in, got, n, err, tc.want, len(tc.in))
		}
	}
}

func TestFormatSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n       int64
		roundUp bool
		want    string
	}{
		{0, false, "0 B"},
		{1023, false, "1023 B"},
		{1536, false, "1.5 KiB"},
		{100 << 20, false, "100 MiB"},
		{150 << 20, true, "150 MiB"},
		{100<<20 + 1, true, "100.1 MiB"},
		{1 << 30, false, "1 GiB"},
	}
	for _, tc := range tests {
		if got := formatSize(tc.n, tc.roundUp); got != tc.want {
			t.Errorf("formatSize(%d, %v) = %q, want %q", tc.n, tc.roundUp, got, tc.want)
		}
	}
}
