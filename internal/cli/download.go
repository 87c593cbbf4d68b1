package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/paddock-ml/paddock/api"
)

// placeDownload moves the tree extracted in src into dst, which holds the
// user's own files. It never deletes anything of dst's: directories merge,
// and a file the outputs contain replaces a local one only with overwrite.
// Every path is checked before anything moves, so a conflict (api
// Conflict, naming the first conflicting path) leaves dst as it was. src
// must be on dst's file system (a temporary directory inside it).
func placeDownload(src, dst string, overwrite bool) error {
	var moves []string // paths relative to src, moved whole, in walk order
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		local := filepath.Join(dst, rel)
		fi, err := os.Lstat(local)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			moves = append(moves, rel)
			if d.IsDir() {
				return filepath.SkipDir // moved with everything in it
			}
			return nil
		case err != nil:
			return err
		case d.IsDir() && fi.IsDir():
			return nil // merge into the local directory
		case d.IsDir() || fi.IsDir():
			return api.Conflict("%s is a %s here but a %s in the run's outputs; move it away and download again (nothing was downloaded)",
				local, kindOf(fi.Mode()), kindOf(d.Type()))
		case !overwrite:
			return api.Conflict("%s already exists; give --overwrite to replace the files the outputs contain (nothing was downloaded)", local)
		}
		moves = append(moves, rel)
		return nil
	})
	if err != nil {
		return err
	}
	for _, rel := range moves {
		if err := os.Rename(filepath.Join(src, rel), filepath.Join(dst, rel)); err != nil {
			return err
		}
	}
	return nil
}

// kindOf names a file type in a message.
func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	default:
		return "file"
	}
}
