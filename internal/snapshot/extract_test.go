package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rawEntry is one hand-made tar entry. data may be shorter than hdr.Size
// to build a lying header.
type rawEntry struct {
	hdr  tar.Header
	data string
}

func reg(name, data string) rawEntry {
	return rawEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}, data: data}
}

func dirEntry(name string) rawEntry {
	return rawEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func symlink(name, target string) rawEntry {
	return rawEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

// buildArchive writes entries as tar.gz exactly as given, including headers
// that claim more data than follows.
func buildArchive(t *testing.T, entries []rawEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	lying := false
	for _, e := range entries {
		hdr := e.hdr
		if hdr.Typeflag != tar.TypeXGlobalHeader {
			hdr.ModTime = time.Unix(1700000000, 0)
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("WriteHeader(%s): %v", hdr.Name, err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			t.Fatalf("Write(%s): %v", hdr.Name, err)
		}
		if int64(len(e.data)) < hdr.Size {
			lying = true
			break // the rest of the archive is missing
		}
	}
	if !lying {
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractHostile(t *testing.T) {
	t.Parallel()
	const etcProbe = "/etc/paddock-snapshot-test-must-not-exist"
	tests := []struct {
		name string
		// entries gets outside, an absolute directory beside dest that
		// nothing may be written to.
		entries   func(outside string) []rawEntry
		preexist  func(t *testing.T, dest, outside string)
		lim       Limits
		want      string // substring of the error
		wantLimit bool
		absent    []string // names that must not exist in dest afterwards
	}{
		{name: "absolute path", entries: func(o string) []rawEntry {
			return []rawEntry{reg(filepath.Join(o, "pwned"), "x")}
		}, want: "absolute paths are not allowed"},
		{name: "absolute /etc path", entries: func(string) []rawEntry {
			return []rawEntry{reg(etcProbe, "x")}
		}, want: "absolute paths are not allowed"},
		{name: "dot-dot escape", entries: func(string) []rawEntry {
			return []rawEntry{reg("../outside/pwned", "x")}
		}, want: "leads outside the destination"},
		{name: "dot-dot escape after a name", entries: func(string) []rawEntry {
			return []rawEntry{reg("ok.txt", "fine"), reg("a/../../outside/pwned", "x")}
		}, want: "leads outside the destination"},
		{name: "symlink to /etc then a file through it", entries: func(string) []rawEntry {
			return []rawEntry{symlink("link", "/etc"), reg("link/"+filepath.Base(etcProbe), "x")}
		}, want: "absolute path /etc"},
		{name: "symlink to outside then a file through it", entries: func(o string) []rawEntry {
			return []rawEntry{symlink("link", o), reg("link/pwned", "x")}
		}, want: "absolute path"},
		{name: "symlink climbing out", entries: func(string) []rawEntry {
			return []rawEntry{dirEntry("sub/"), symlink("sub/x", "../../outside")}
		}, want: "outside the directory"},
		{name: "symlink to ../../x", entries: func(string) []rawEntry {
			return []rawEntry{symlink("x", "../../x")}
		}, want: "outside the directory"},
		{name: "symlink through a symlink", entries: func(string) []rawEntry {
			return []rawEntry{symlink("a", "."), symlink("b", "a/..")}
		}, want: "goes back up", absent: []string{"b"}},
		{name: "symlink through a later symlink", entries: func(string) []rawEntry {
			return []rawEntry{symlink("b", "a/../.."), symlink("a", ".")}
		}, want: "goes back up"},
		{name: "file through an inside symlink", entries: func(string) []rawEntry {
			return []rawEntry{dirEntry("real/"), symlink("link", "real"), reg("link/x", "x")}
		}, want: "link is a symlink and nothing may be written through it", absent: []string{"real/x"}},
		{name: "file replacing a symlink", entries: func(string) []rawEntry {
			return []rawEntry{reg("target", "t"), symlink("link", "target"), reg("link", "overwrite")}
		}, want: "replaces an earlier entry"},
		{name: "directory replacing a symlink", entries: func(string) []rawEntry {
			return []rawEntry{symlink("link", "."), dirEntry("link/"), reg("link/x", "x")}
		}, want: "replaces an earlier entry"},
		{name: "symlink already in dest", preexist: func(t *testing.T, dest, outside string) {
			if err := os.Symlink(outside, filepath.Join(dest, "link")); err != nil {
				t.Fatal(err)
			}
		}, entries: func(string) []rawEntry {
			return []rawEntry{reg("link/pwned", "x")}
		}, want: "nothing may be written through it"},
		{name: "file over a symlink already in dest", preexist: func(t *testing.T, dest, outside string) {
			if err := os.Symlink(filepath.Join(outside, "pwned"), filepath.Join(dest, "link")); err != nil {
				t.Fatal(err)
			}
		}, entries: func(string) []rawEntry {
			return []rawEntry{reg("link", "x")}
		}, want: "would replace an existing symlink"},
		{name: "hard link", entries: func(string) []rawEntry {
			return []rawEntry{{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "/etc/passwd"}}}
		}, want: "hard links are not allowed", absent: []string{"h"}},
		{name: "hard link inside", entries: func(string) []rawEntry {
			return []rawEntry{reg("a", "x"), {hdr: tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "a"}}}
		}, want: "hard links are not allowed"},
		{name: "char device", entries: func(string) []rawEntry {
			return []rawEntry{{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3, Mode: 0o666}}}
		}, want: "device files are not allowed", absent: []string{"null"}},
		{name: "block device", entries: func(string) []rawEntry {
			return []rawEntry{{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Devmajor: 8, Mode: 0o660}}}
		}, want: "device files are not allowed"},
		{name: "fifo", entries: func(string) []rawEntry {
			return []rawEntry{{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "pipe", Mode: 0o644}}}
		}, want: "fifos are not allowed", absent: []string{"pipe"}},
		{name: "oversize header", entries: func(string) []rawEntry {
			e := reg("big.bin", "just a little data")
			e.hdr.Size = 1 << 30
			return []rawEntry{e}
		}, want: `archive is larger than the 100 MiB limit (entry "big.bin" brings it to 1 GiB)`, wantLimit: true, absent: []string{"big.bin"}},
		{name: "truncated file", entries: func(string) []rawEntry {
			e := reg("short.bin", "just a little data")
			e.hdr.Size = 1000
			return []rawEntry{e}
		}, want: "unexpected EOF"},
		{name: "bytes over the limit across files", lim: Limits{MaxBytes: 10}, entries: func(string) []rawEntry {
			return []rawEntry{reg("a", "12345678"), reg("b", "12345678")}
		}, want: `archive is larger than the 10 B limit (entry "b" brings it to 16 B)`, wantLimit: true, absent: []string{"b"}},
		{name: "too many entries", lim: Limits{MaxFiles: 3}, entries: func(string) []rawEntry {
			return []rawEntry{reg("a", ""), reg("b", ""), reg("c", ""), reg("d", ""), reg("e", "")}
		}, want: `archive has more than the limit of 3 files, directories and symlinks (entry "d" is number 4)`, wantLimit: true, absent: []string{"d", "e"}},
		{name: "deep name makes too many directories", lim: Limits{MaxFiles: 10}, entries: func(string) []rawEntry {
			return []rawEntry{reg(strings.Repeat("d/", 50)+"f", "x")}
		}, want: "archive has more than the limit of 10", wantLimit: true},
		{name: "directory claiming data", entries: func(string) []rawEntry {
			e := dirEntry("d/")
			e.hdr.Size = 1 << 40
			return []rawEntry{e}
		}, want: "declares 1099511627776 bytes", absent: []string{"d"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			dest := filepath.Join(base, "dest")
			for _, d := range []string{outside, dest} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tc.preexist != nil {
				tc.preexist(t, dest, outside)
			}
			data := buildArchive(t, tc.entries(outside))
			_, err := Extract(bytes.NewReader(data), dest, tc.lim)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Extract: err = %v, want one containing %q", err, tc.want)
			}
			var le *LimitError
			if got := errors.As(err, &le); got != tc.wantLimit {
				t.Errorf("Extract: err is a *LimitError: %v, want %v", got, tc.wantLimit)
			}
			// Nothing outside dest: base holds only dest and an empty outside.
			if des, err := os.ReadDir(outside); err != nil || len(des) != 0 {
				t.Errorf("outside directory has %d entries (err %v), want none", len(des), err)
			}
			if des, err := os.ReadDir(base); err != nil || len(des) != 2 {
				t.Errorf("base directory has %d entries (err %v), want dest and outside", len(des), err)
			}
			if _, err := os.Lstat(etcProbe); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s exists (err %v)", etcProbe, err)
			}
			// A refused or oversize entry is never created.
			for _, name := range tc.absent {
				if _, err := os.Lstat(filepath.Join(dest, name)); err == nil {
					t.Errorf("%s was created in dest", name)
				}
			}
		})
	}
}

func TestExtractAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []rawEntry
		want    Info
	}{
		{"implicit parents", []rawEntry{reg("a/b/c.txt", "abc")}, Info{Files: 3, Bytes: 3}},
		{"explicit dir after implicit", []rawEntry{reg("a/x", "1"), dirEntry("a/")}, Info{Files: 2, Bytes: 1}},
		{"dot entries", []rawEntry{dirEntry("./"), reg("./a", "1"), reg("b/../c", "22")}, Info{Files: 2, Bytes: 3}},
		{"symlinks inside", []rawEntry{
			dirEntry("d/"), reg("d/f", "f"), symlink("l1", "d/f"), symlink("d/l2", "../d"), symlink("d/l3", "./f"),
		}, Info{Files: 5, Bytes: 1}},
		{"pax global header", []rawEntry{
			{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "hi"}}},
			reg("a", "1"),
		}, Info{Files: 1, Bytes: 1}},
		{"read-only directory", []rawEntry{
			{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "ro/", Mode: 0o555}}, reg("ro/f", "x"),
		}, Info{Files: 2, Bytes: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := filepath.Join(t.TempDir(), "new", "dest")
			got, err := Extract(bytes.NewReader(buildArchive(t, tc.entries)), dest, Limits{MaxFiles: 5})
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Extract (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExtractNotAnArchive(t *testing.T) {
	t.Parallel()
	_, err := Extract(strings.NewReader("plain text"), t.TempDir(), Limits{})
	if err == nil || !strings.Contains(err.Error(), "not a gzip-compressed tar archive") {
		t.Errorf("Extract: err = %v", err)
	}
	// A gzip stream that is not a tar.
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write([]byte(strings.Repeat("not a tar header ", 100)))
	gz.Close()
	if _, err := Extract(&buf, t.TempDir(), Limits{}); err == nil {
		t.Error("Extract of gzipped text succeeded")
	}
}
