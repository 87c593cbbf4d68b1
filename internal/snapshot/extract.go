package snapshot

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Extract unpacks a gzip-compressed tar archive from r into dest, creating
// dest if it is missing, and reports what it unpacked.
//
// The archive is treated as hostile. Extract refuses, with an error naming
// the entry: absolute paths; paths whose ".." leads outside dest; symlinks
// whose target is absolute or could lead outside dest (the same rule as
// Create's); any entry whose parent is a symlink, whether made earlier by
// this archive or already in dest, so nothing is ever written through a
// symlink; an entry that replaces one made earlier by this archive; hard
// links; devices, fifos and other special entries. Every write goes through
// an os.Root opened on dest, so even a symlink Extract missed could not lead
// outside it.
//
// lim is enforced while reading: each entry is counted before it is made,
// and a file's declared size is checked against the remaining byte budget
// before the file is created, so Extract never writes past the limit. Going
// over returns a *LimitError.
//
// Permission bits (not setuid, setgid or sticky) and modification times are
// restored for files and directories; owners are not. On error Extract stops
// and returns it. Nothing is ever written outside dest, but entries already
// unpacked inside dest stay there: callers extract into a fresh temporary
// directory and rename it into place only on success.
func Extract(r io.Reader, dest string, lim Limits) (Info, error) {
	lim = lim.withDefaults()
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return Info{}, fmt.Errorf("extracting into %s: %w", dest, err)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return Info{}, fmt.Errorf("extracting into %s: %w", dest, err)
	}
	defer root.Close()

	gz, err := gzip.NewReader(r)
	if err != nil {
		return Info{}, fmt.Errorf("reading archive: not a gzip-compressed tar archive: %w", err)
	}
	tr := tar.NewReader(gz)
	x := &extractor{root: root, lim: lim, seen: map[string]byte{}, realDirs: map[string]bool{}}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return x.info, fmt.Errorf("reading archive: %w", err)
		}
		x.count++
		if x.count > lim.MaxFiles {
			return x.info, x.countError(hdr)
		}
		if err := x.extract(hdr, tr); err != nil {
			return x.info, err
		}
	}
	// Read the gzip trailer so that a corrupt archive is reported. What
	// follows the tar end marker is padding; a bounded read is enough.
	if _, err := io.Copy(io.Discard, io.LimitReader(gz, 1<<20)); err != nil {
		return x.info, fmt.Errorf("reading archive: %w", err)
	}
	if err := x.finish(); err != nil {
		return x.info, err
	}
	return x.info, nil
}

// extractor holds the state of one Extract.
type extractor struct {
	root  *os.Root
	lim   Limits
	info  Info
	count int // headers read plus parent directories made, against lim.MaxFiles

	seen     map[string]byte // cleaned name -> typeflag, for entries made by this archive
	realDirs map[string]bool // names checked (or made) to be real directories, not symlinks
	dirs     []dirMeta       // directory modes and times, applied last
}

type dirMeta struct {
	name  string
	perm  fs.FileMode
	mtime time.Time
}

// refused builds the error for an entry Extract will not unpack.
func refused(hdr *tar.Header, format string, args ...any) error {
	return fmt.Errorf("archive entry %q refused: %s", hdr.Name, fmt.Sprintf(format, args...))
}

// refusedBy is refused for an entry the file system would not make; it
// wraps err, so that callers can tell a full disk (syscall.ENOSPC) from a
// hostile archive.
func refusedBy(hdr *tar.Header, err error) error {
	return fmt.Errorf("archive entry %q refused: %w", hdr.Name, err)
}

func (x *extractor) extract(hdr *tar.Header, tr io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink:
	case '\x00': // tar.TypeRegA, an old spelling of TypeReg
		hdr.Typeflag = tar.TypeReg
	case tar.TypeXGlobalHeader:
		return nil // PAX global defaults: nothing to unpack
	case tar.TypeLink:
		return refused(hdr, "hard links are not allowed")
	case tar.TypeChar, tar.TypeBlock:
		return refused(hdr, "device files are not allowed")
	case tar.TypeFifo:
		return refused(hdr, "fifos are not allowed")
	default:
		return refused(hdr, "entry type %q is not supported", hdr.Typeflag)
	}
	if hdr.Size < 0 || (hdr.Typeflag != tar.TypeReg && hdr.Size != 0) {
		return refused(hdr, "it declares %d bytes of data", hdr.Size)
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return refused(hdr, "%v", err)
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return nil // "./": dest itself
		}
		return refused(hdr, "it names the destination directory itself")
	}
	if prev, ok := x.seen[name]; ok && (prev != tar.TypeDir || hdr.Typeflag != tar.TypeDir) {
		return refused(hdr, "it replaces an earlier entry with the same name")
	}
	if err := x.realDir(hdr, path.Dir(name), false); err != nil {
		return err
	}
	native := filepath.FromSlash(name)
	perm := fs.FileMode(hdr.Mode).Perm()

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := x.realDir(hdr, name, true); err != nil {
			return err
		}
		x.dirs = append(x.dirs, dirMeta{name: native, perm: perm, mtime: hdr.ModTime})

	case tar.TypeSymlink:
		if err := checkLinkTarget(name, hdr.Linkname); err != nil {
			return refused(hdr, "%v", err)
		}
		if err := x.root.Symlink(hdr.Linkname, native); err != nil {
			return refusedBy(hdr, err)
		}

	case tar.TypeReg:
		if hdr.Size > x.lim.MaxBytes-x.info.Bytes {
			return &LimitError{msg: fmt.Sprintf(
				"archive is larger than the %s limit (entry %q brings it to %s)",
				formatSize(x.lim.MaxBytes, false), hdr.Name, formatSize(x.info.Bytes+hdr.Size, true))}
		}
		if fi, err := x.root.Lstat(native); err == nil && !fi.Mode().IsRegular() {
			return refused(hdr, "it would replace an existing %s", describe(fi.Mode()))
		}
		if err := x.writeFile(hdr, native, perm, tr); err != nil {
			return err
		}
		x.info.Bytes += hdr.Size
	}
	if _, ok := x.seen[name]; !ok {
		x.info.Files++
	}
	x.seen[name] = hdr.Typeflag
	return nil
}

// writeFile creates the file native and copies exactly hdr.Size bytes into
// it.
func (x *extractor) writeFile(hdr *tar.Header, native string, perm fs.FileMode, tr io.Reader) error {
	f, err := x.root.OpenFile(native, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return refusedBy(hdr, err)
	}
	_, err = io.CopyN(f, tr, hdr.Size)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("reading archive: entry %q is truncated", hdr.Name)
	}
	if err != nil {
		return fmt.Errorf("extracting %q: %w", hdr.Name, err)
	}
	if err := x.root.Chtimes(native, hdr.ModTime, hdr.ModTime); err != nil {
		return fmt.Errorf("extracting %q: %w", hdr.Name, err)
	}
	return nil
}

// realDir makes sure that the slash-separated name is a real directory under
// the root, making it and its parents where missing. A symlink or a file on
// the way is refused: a later entry must never be written through a symlink,
// even one that points inside dest. Directories made here for an entry's
// parents count against lim like entries, so a single deep name cannot make
// an unbounded number of them; own is true when name is the entry itself
// (already counted).
func (x *extractor) realDir(hdr *tar.Header, name string, own bool) error {
	if name == "." || x.realDirs[name] {
		return nil
	}
	if err := x.realDir(hdr, path.Dir(name), false); err != nil {
		return err
	}
	native := filepath.FromSlash(name)
	fi, err := x.root.Lstat(native)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !own {
			x.count++
			if x.count > x.lim.MaxFiles {
				return x.countError(hdr)
			}
			x.info.Files++
			x.seen[name] = tar.TypeDir
		}
		if err := x.root.Mkdir(native, 0o755); err != nil {
			return fmt.Errorf("extracting %q: %w", hdr.Name, err)
		}
	case err != nil:
		return fmt.Errorf("extracting %q: %w", hdr.Name, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return refused(hdr, "%s is a symlink and nothing may be written through it", name)
	case !fi.IsDir():
		return refused(hdr, "%s is a %s, not a directory", name, describe(fi.Mode()))
	}
	x.realDirs[name] = true
	return nil
}

// countError is the *LimitError for going over lim.MaxFiles at hdr.
func (x *extractor) countError(hdr *tar.Header) error {
	return &LimitError{msg: fmt.Sprintf(
		"archive has more than the limit of %d files, directories and symlinks (entry %q is number %d)",
		x.lim.MaxFiles, hdr.Name, x.count)}
}

// finish applies directory modes and times, deepest first, once nothing more
// will be written into them.
func (x *extractor) finish() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := x.root.Chmod(d.name, d.perm); err != nil {
			return fmt.Errorf("extracting %q: %w", filepath.ToSlash(d.name), err)
		}
		if err := x.root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return fmt.Errorf("extracting %q: %w", filepath.ToSlash(d.name), err)
		}
	}
	return nil
}

// maxNameLen bounds an entry name, as PATH_MAX does on Linux.
const maxNameLen = 4096

// cleanName turns an entry name into a clean, slash-separated path relative
// to dest, or says why it cannot be one.
func cleanName(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("the name is empty")
	}
	if len(raw) > maxNameLen {
		return "", fmt.Errorf("the name is longer than %d bytes", maxNameLen)
	}
	if strings.ContainsRune(raw, 0) {
		return "", errors.New("the name contains a NUL byte")
	}
	if path.IsAbs(raw) || filepath.IsAbs(raw) || filepath.VolumeName(raw) != "" || strings.HasPrefix(raw, `\`) {
		return "", errors.New("absolute paths are not allowed")
	}
	name := path.Clean(raw)
	if name == "." {
		return name, nil
	}
	if name == ".." || strings.HasPrefix(name, "../") || !filepath.IsLocal(filepath.FromSlash(name)) {
		return "", errors.New("the path leads outside the destination")
	}
	return name, nil
}

// describe names a file type for an error message.
func describe(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsRegular():
		return "file"
	default:
		return "special file"
	}
}
