// Package artifact keeps the files runs bring and produce on the server's
// disk: source snapshots (content-addressed tar.gz) and each run's outputs
// (an extracted tree), readable by the server's user only. Every write goes to a temporary name first and is
// renamed into place on success, so a crash never leaves half a file where
// a reader looks.
package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"syscall"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/snapshot"
)

// Store is the artifact directory.
type Store struct {
	dir string
	// SnapshotLimit bounds an uploaded snapshot's compressed size.
	SnapshotLimit int64
	// OutputLimits bound a run's outputs.
	OutputLimits snapshot.Limits
}

// New returns a store under dir, creating its folders.
func New(dir string) (*Store, error) {
	for _, sub := range []string{"snapshots", "outputs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	return &Store{dir: dir, SnapshotLimit: snapshot.DefaultLimits.MaxBytes, OutputLimits: snapshot.Limits{MaxBytes: 1 << 30, MaxFiles: 100000}}, nil
}

var digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidDigest reports whether s looks like a sha256 hex digest.
func ValidDigest(s string) bool { return digestRE.MatchString(s) }

// SnapshotPath is where a snapshot is kept.
func (s *Store) SnapshotPath(digest string) string {
	return filepath.Join(s.dir, "snapshots", digest+".tar.gz")
}

// HasSnapshot reports whether a snapshot is stored.
func (s *Store) HasSnapshot(digest string) bool {
	if !ValidDigest(digest) {
		return false
	}
	_, err := os.Stat(s.SnapshotPath(digest))
	return err == nil
}

// CheckSnapshotSize refuses a snapshot of n compressed bytes if it is over
// SnapshotLimit, with 413 TooLarge.
func (s *Store) CheckSnapshotSize(n int64) error {
	if n > s.SnapshotLimit {
		return api.TooLarge("source", "the source snapshot is larger than the %d MiB limit; exclude files with a .paddockignore", s.SnapshotLimit>>20)
	}
	return nil
}

// PutSnapshot stores an uploaded snapshot and returns its digest. It refuses
// uploads larger than SnapshotLimit, and those the disk has no room for
// (507 InsufficientStorage); either way nothing is left behind.
func (s *Store) PutSnapshot(r io.Reader) (ref api.SnapshotRef, err error) {
	defer func() { err = storageError(err, "the snapshot") }()
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "snapshot-*")
	if err != nil {
		return api.SnapshotRef{}, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, s.SnapshotLimit+1))
	if err != nil {
		tmp.Close()
		return api.SnapshotRef{}, err
	}
	if err := s.CheckSnapshotSize(n); err != nil {
		tmp.Close()
		return api.SnapshotRef{}, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return api.SnapshotRef{}, err
	}
	if err := tmp.Close(); err != nil {
		return api.SnapshotRef{}, err
	}
	digest := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp.Name(), s.SnapshotPath(digest)); err != nil {
		return api.SnapshotRef{}, err
	}
	return api.SnapshotRef{Digest: digest, Size: n}, nil
}

// OutputsDir is where a run's outputs are kept.
func (s *Store) OutputsDir(runID string) string { return filepath.Join(s.dir, "outputs", runID) }

// PutOutputs unpacks an attempt's outputs archive and makes it the run's
// outputs, replacing those of an earlier attempt. It returns the file list.
// Outputs the disk has no room for are refused (507 InsufficientStorage)
// and leave nothing behind; the earlier outputs stay.
func (s *Store) PutOutputs(runID string, r io.Reader) (files []api.OutputFile, err error) {
	defer func() { err = storageError(err, "the outputs") }()
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), "outputs-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	tree := filepath.Join(tmp, "tree")
	if _, err := snapshot.Extract(r, tree, s.OutputLimits); err != nil {
		var le *snapshot.LimitError
		switch {
		case isStorageFull(err):
			return nil, err
		case errors.As(err, &le):
			return nil, api.Invalid("outputs", "%v", err)
		}
		return nil, api.Invalid("outputs", "the outputs archive was refused: %v", err)
	}
	if _, err := makePrivate(tree); err != nil {
		return nil, err
	}
	dst := s.OutputsDir(runID)
	old := filepath.Join(tmp, "old")
	if err := os.Rename(dst, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.Rename(tree, dst); err != nil {
		return nil, err
	}
	return ListOutputs(dst)
}

// isStorageFull reports whether err is a full disk or an exhausted quota.
func isStorageFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// storageError turns a full disk or quota met while storing what into 507
// InsufficientStorage (the *api.Error the user sees wraps the cause, for
// the server log); other errors pass unchanged.
func storageError(err error, what string) error {
	if err == nil || !isStorageFull(err) {
		return err
	}
	return fmt.Errorf("%w: %w", api.InsufficientStorage("the server has no disk space left to store %s; ask its admin to free some and try again", what), err)
}

// MakePrivate takes group and other permissions off everything in the
// store (earlier versions kept outputs with the modes runs gave them) and
// reports how many entries it changed.
func (s *Store) MakePrivate() (int, error) { return makePrivate(s.dir) }

// makePrivate takes group and other permissions off dir and everything in
// it, symlinks aside; outputs keep the owner's bits a run gave them.
func makePrivate(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			n++
			return os.Chmod(p, perm&^0o077)
		}
		return nil
	})
	return n, err
}

// ListOutputs lists the regular files under dir with their sizes.
func ListOutputs(dir string) ([]api.OutputFile, error) {
	var out []api.OutputFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, api.OutputFile{Path: filepath.ToSlash(rel), Size: info.Size()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

// WriteOutputs writes a run's outputs as tar.gz to w.
func (s *Store) WriteOutputs(runID string, w io.Writer) error {
	dir := s.OutputsDir(runID)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Join(s.dir, "tmp", "empty"), 0o700); err != nil {
			return err
		}
		dir = filepath.Join(s.dir, "tmp", "empty")
	}
	_, err := snapshot.Create(dir, w, snapshot.Limits{MaxBytes: 1 << 40, MaxFiles: 1 << 30})
	if err != nil {
		return fmt.Errorf("packing outputs of %s: %w", runID, err)
	}
	return nil
}

// OpenOutput opens one file of a run's outputs by its path there (as
// ListOutputs names it); a path that leaves the outputs, through ".." or a
// link, is refused.
func (s *Store) OpenOutput(runID, path string) (*os.File, error) {
	root, err := os.OpenRoot(s.OutputsDir(runID))
	if err != nil {
		return nil, api.NotFound("run %s has no outputs", runID)
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(path))
	if err != nil {
		return nil, api.NotFound("run %s has no output %q", runID, path)
	}
	return f, nil
}
