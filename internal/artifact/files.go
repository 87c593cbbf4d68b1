package artifact

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// Files a run or its user uploads (Azure ML's upload_file, log_image) are
// kept apart from the outputs its agent uploads, which replace each other
// attempt after attempt: under files/<run>/<path>. A run's files are both:
// its outputs as outputs/<path>, and the uploaded ones by the path they
// were given; where the two name the same file, the output is the one
// listed and served.

// MaxRunFilePath bounds the path of an uploaded file.
const MaxRunFilePath = 1024

// FilesDir is where the files uploaded to a run are kept.
func (s *Store) FilesDir(runID string) string { return filepath.Join(s.dir, "files", runID) }

// CheckRunFilePath refuses a path that is not a clean relative one
// ("outputs/model.pkl", "images/loss.png"): no leading '/', no '.' or '..'
// parts, no empty parts, no NUL or backslash, at most MaxRunFilePath bytes.
func CheckRunFilePath(p string) error {
	bad := p == "" || len(p) > MaxRunFilePath || strings.ContainsAny(p, "\x00\\") || strings.HasPrefix(p, "/") ||
		strings.HasSuffix(p, "/") || path.Clean(p) != p
	for _, part := range strings.Split(p, "/") {
		bad = bad || part == "." || part == ".."
	}
	if bad {
		return api.Invalid("path", "file path %q must be a relative path such as outputs/model.pkl: no leading /, no . or .. parts, at most %d bytes", p, MaxRunFilePath)
	}
	return nil
}

// PutRunFile stores a file uploaded to a run at p (checked with
// CheckRunFilePath), replacing one uploaded there before. Uploaded files
// count against OutputLimits together; a file over them, or one the disk
// has no room for, is refused and leaves nothing behind.
func (s *Store) PutRunFile(runID, p string, r io.Reader) (f api.RunFile, err error) {
	defer func() { err = storageError(err, "the file") }()
	if err := CheckRunFilePath(p); err != nil {
		return api.RunFile{}, err
	}
	dir := s.FilesDir(runID)
	used, count, err := treeSize(dir)
	if err != nil {
		return api.RunFile{}, err
	}
	dst := filepath.Join(dir, filepath.FromSlash(p))
	if fi, err := os.Lstat(dst); err == nil {
		if fi.IsDir() {
			return api.RunFile{}, api.Conflict("%s is a folder of uploaded files; upload to a path inside it", p)
		}
		used, count = used-fi.Size(), count-1 // replaced
	}
	if count+1 > int64(s.OutputLimits.MaxFiles) {
		return api.RunFile{}, api.TooLarge("path", "run %s has %d uploaded files, the most it may have", runID, s.OutputLimits.MaxFiles)
	}
	// Every parent must be a folder (a file of that name cannot be one).
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(d))); err == nil && !fi.IsDir() {
			return api.RunFile{}, api.Conflict("%s is an uploaded file, so it cannot hold %s", d, p)
		}
	}
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "file-*")
	if err != nil {
		return api.RunFile{}, err
	}
	defer os.Remove(tmp.Name())
	room := s.OutputLimits.MaxBytes - used
	n, err := io.Copy(tmp, io.LimitReader(r, room+1))
	if err == nil && n > room {
		err = api.TooLarge("body", "the files uploaded to run %s would be larger than %s together", runID, sizeText(s.OutputLimits.MaxBytes))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return api.RunFile{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return api.RunFile{}, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return api.RunFile{}, err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return api.RunFile{}, err
	}
	return api.RunFile{Path: p, Size: n, Origin: api.FileUploaded, Time: fi.ModTime().UTC()}, nil
}

// treeSize is the bytes and number of the regular files under dir.
func treeSize(dir string) (size, count int64, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			size += info.Size()
			count++
		}
		return err
	})
	return size, count, err
}

// RunFiles lists a run's files: its outputs (outputs/...) and the files
// uploaded to it, by path.
func (s *Store) RunFiles(runID string) ([]api.RunFile, error) {
	var out []api.RunFile
	seen := map[string]bool{}
	for _, tree := range []struct{ dir, prefix, origin string }{
		{s.OutputsDir(runID), "outputs/", api.FileOutput},
		{s.FilesDir(runID), "", api.FileUploaded},
	} {
		err := filepath.WalkDir(tree.dir, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(tree.dir, p)
			name := tree.prefix + filepath.ToSlash(rel)
			if !seen[name] {
				seen[name] = true
				out = append(out, api.RunFile{Path: name, Size: info.Size(), Origin: tree.origin, Time: info.ModTime().UTC()})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// HasRunFile reports whether a run has a file at p (see RunFiles).
func (s *Store) HasRunFile(runID, p string) bool {
	f, _, _, err := s.OpenRunFile(runID, p)
	if err == nil {
		f.Close()
	}
	return err == nil
}

// OpenRunFile opens one of a run's files (see RunFiles) for reading, with
// its size and time; it never follows a link out of the run's trees. A
// missing file is api.ErrNotFound.
func (s *Store) OpenRunFile(runID, p string) (*os.File, int64, time.Time, error) {
	if err := CheckRunFilePath(p); err != nil {
		return nil, 0, time.Time{}, err
	}
	try := func(dir, rel string) (*os.File, int64, time.Time, bool) {
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, 0, time.Time{}, false
		}
		defer root.Close()
		f, err := root.Open(rel)
		if err != nil {
			return nil, 0, time.Time{}, false
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			return nil, 0, time.Time{}, false
		}
		return f, fi.Size(), fi.ModTime().UTC(), true
	}
	if rel, ok := strings.CutPrefix(p, "outputs/"); ok {
		if f, n, t, ok := try(s.OutputsDir(runID), rel); ok {
			return f, n, t, nil
		}
	}
	if f, n, t, ok := try(s.FilesDir(runID), p); ok {
		return f, n, t, nil
	}
	return nil, 0, time.Time{}, api.NotFound("run %s has no file %s", runID, p)
}

// sizeText writes a byte count in the largest whole binary unit.
func sizeText(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + " GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
