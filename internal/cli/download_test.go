package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/api"
)

// writeTree makes files (path → content; a content starting "->" makes a
// symlink to the rest, a path ending "/" a directory) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, full)
		} else {
			err = os.WriteFile(full, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// readTree reads the files and symlinks under dir back as writeTree takes
// them (directories only when empty).
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "->" + target
		case d.Type().IsRegular():
			data, _ := os.ReadFile(p)
			out[rel] = string(data)
		case d.IsDir() && p != dir:
			if entries, _ := os.ReadDir(p); len(entries) == 0 {
				out[rel+"/"] = ""
			}
		}
		return nil
	})
	return out
}

// The hostile test's finding: `run download --to DIR` replaced an existing
// DIR/data/ whole when the outputs held data/. Downloads now never delete
// local files, replace them only with --overwrite, and refuse a conflict
// (exit 4, naming the path) before writing anything.
func TestPlaceDownloadNeverDeletesLocalFiles(t *testing.T) {
	outputs := map[string]string{"model.txt": "new weights", "data/x.txt": "x", "data/deep/y.txt": "y", "empty/": ""}
	tests := []struct {
		name      string
		local     map[string]string
		overwrite bool
		conflict  string            // the path named by the conflict; "" for none
		want      map[string]string // the local tree after
	}{
		{name: "into an empty directory", local: map[string]string{},
			want: outputs},
		{name: "local data/ is merged, not replaced", local: map[string]string{"data/mine.txt": "mine", "notes.md": "n"},
			want: map[string]string{"model.txt": "new weights", "data/x.txt": "x", "data/deep/y.txt": "y", "empty/": "",
				"data/mine.txt": "mine", "notes.md": "n"}},
		{name: "an existing file stops the download", local: map[string]string{"model.txt": "old weights", "data/mine.txt": "mine"},
			conflict: "model.txt"},
		{name: "the first conflict in path order is named", local: map[string]string{"model.txt": "old", "data/deep/y.txt": "old y"},
			conflict: "data/deep/y.txt"},
		{name: "--overwrite replaces the files the outputs hold, keeps the rest",
			local: map[string]string{"model.txt": "old weights", "data/mine.txt": "mine", "data/x.txt": "old x"}, overwrite: true,
			want: map[string]string{"model.txt": "new weights", "data/x.txt": "x", "data/deep/y.txt": "y", "empty/": "", "data/mine.txt": "mine"}},
		{name: "a local file where the outputs have a directory", local: map[string]string{"data": "a file"}, overwrite: true,
			conflict: "data"},
		{name: "a local directory where the outputs have a file", local: map[string]string{"model.txt/keep": "k"}, overwrite: true,
			conflict: "model.txt"},
		{name: "a local symlink where the outputs have a directory is not written through",
			local: map[string]string{"data": "->/tmp"}, overwrite: true, conflict: "data"},
		{name: "--overwrite replaces a local symlink, not what it points to",
			local: map[string]string{"model.txt": "->elsewhere.txt", "elsewhere.txt": "keep me"}, overwrite: true,
			want: map[string]string{"model.txt": "new weights", "data/x.txt": "x", "data/deep/y.txt": "y", "empty/": "", "elsewhere.txt": "keep me"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			writeTree(t, dst, tc.local)
			src, err := os.MkdirTemp(dst, ".paddock-download-*")
			if err != nil {
				t.Fatal(err)
			}
			writeTree(t, src, outputs)
			err = placeDownload(src, dst, tc.overwrite)
			os.RemoveAll(src)
			if tc.conflict != "" {
				var e *api.Error
				if !errors.As(err, &e) || e.Code != api.CodeConflict || !strings.HasPrefix(e.Message, filepath.Join(dst, tc.conflict)+" ") {
					t.Fatalf("error %v, want a conflict naming %s", err, tc.conflict)
				}
				if diff := cmp.Diff(tc.local, readTree(t, dst)); diff != "" {
					t.Errorf("a refused download changed the directory (-before +after):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, readTree(t, dst)); diff != "" {
				t.Errorf("after the download (-want +got):\n%s", diff)
			}
		})
	}
}
