package snapshot

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// FuzzExtract treats the input as a hostile archive: a tar stream that the
// target compresses first (so the fuzzer explores tar headers and paths,
// not gzip), or, with compressed set, the tar.gz as it is. Whatever it
// holds, Extract writes nothing outside dest, keeps the limits, makes no
// hard link, device or fifo and no symlink that leads outside dest, and on
// success reports what it made. Seeds are in testdata/fuzz/FuzzExtract/.
func FuzzExtract(f *testing.F) {
	base := f.TempDir()
	lim := Limits{MaxBytes: 64 << 10, MaxFiles: 64}
	f.Fuzz(func(t *testing.T, data []byte, compressed bool) {
		if !compressed {
			var buf bytes.Buffer
			gz := gzip.NewWriter(&buf)
			gz.Write(data)
			gz.Close()
			data = buf.Bytes()
		}
		box, err := os.MkdirTemp(base, "box-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(box)
		dest := filepath.Join(box, "dest")
		info, xerr := Extract(bytes.NewReader(data), dest, lim)

		if entries, _ := os.ReadDir(box); len(entries) != 1 || entries[0].Name() != "dest" {
			t.Fatalf("Extract wrote beside dest: %v (err %v)", entries, xerr)
		}
		var files int
		var size int64
		err = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				os.Chmod(p, 0o700) // restored modes may be 0: let the walk and the clean-up in
			}
			if p == dest {
				return nil
			}
			files++
			rel, _ := filepath.Rel(dest, p)
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			switch m := fi.Mode(); {
			case m.IsRegular():
				size += fi.Size()
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink != 1 {
					t.Fatalf("%s has %d links", rel, st.Nlink)
				}
			case m&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				if err := checkLinkTarget(filepath.ToSlash(rel), target); err != nil {
					t.Fatalf("Extract made a symlink that leads out: %v", err)
				}
			case m.IsDir():
			default:
				t.Fatalf("Extract made %s, a %s", rel, m.Type())
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("walking what Extract made: %v", err)
		}
		if files > lim.MaxFiles || size > lim.MaxBytes {
			t.Fatalf("Extract went over the limits: %d entries, %d bytes (err %v)", files, size, xerr)
		}
		if xerr == nil && (info.Files != files || info.Bytes != size) {
			t.Fatalf("Extract reported %d entries and %d bytes; dest has %d and %d", info.Files, info.Bytes, files, size)
		}
	})
}
