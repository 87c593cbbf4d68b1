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
	"sort"
	"strings"
	"time"
)

// Create writes dir as a gzip-compressed tar archive to w and reports what it
// wrote.
//
// Paths that the .paddockignore at dir's root excludes are left out. The
// syntax is .gitignore's: one glob per line ("*", "?", "[a-z]", "[!a-z]"),
// "**" for any number of directories, a leading "!" to re-include, a trailing
// "/" to match only directories, a leading or inner "/" to anchor the pattern
// at dir's root (otherwise it matches a name at any depth), "#" for comments,
// blank lines ignored, and the last matching line wins. As in git, an
// excluded directory is not descended into, so nothing inside it can be
// re-included: write "data/*" and "!data/keep.txt", not "data/" and
// "!data/keep.txt". The ignore file itself is always included; only the one
// at the root is read.
//
// Regular files, directories and symlinks are stored with their permission
// bits (not setuid, setgid or sticky) and their modification times truncated
// to the second; owners are not stored. Symlinks are stored as symlinks, never
// followed. A symlink whose target is absolute, leads outside dir (Extract
// would refuse it) or does not exist is left out and listed in
// Info.Skipped, so that one bad link does not cost the rest of the tree.
// Devices, sockets and fifos are skipped silently.
// Entries are written in sorted order without any per-run data, so the same
// tree gives the same bytes.
//
// Before writing anything Create walks the tree; if the files and their total
// size exceed lim it returns a *LimitError that says by how much and writes
// nothing. w must not be a file inside dir.
func Create(dir string, w io.Writer, lim Limits) (Info, error) {
	lim = lim.withDefaults()
	shown := dir
	if abs, err := filepath.Abs(dir); err == nil {
		shown = abs
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Info{}, fmt.Errorf("directory %s does not exist", shown)
	case err != nil:
		return Info{}, fmt.Errorf("directory %s: %w", shown, err)
	case !fi.IsDir():
		return Info{}, fmt.Errorf("%s is not a directory", shown)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Info{}, fmt.Errorf("directory %s: %w", shown, err)
	}
	defer root.Close()

	p := &planner{root: root, lim: lim, countCap: max(10*lim.MaxFiles, 100000)}
	data, err := root.ReadFile(IgnoreFile)
	switch {
	case err == nil:
		p.hasIgnore = true
		if p.ign, err = parseIgnore(string(data)); err != nil {
			return Info{}, fmt.Errorf("directory %s: %w", shown, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return Info{}, fmt.Errorf("directory %s: reading %s: %w", shown, IgnoreFile, err)
	}
	if err := p.walk(""); err != nil && !errors.Is(err, errStopWalk) {
		return Info{}, fmt.Errorf("directory %s: %w", shown, err)
	}
	if err := p.limitError(shown); err != nil {
		return Info{}, err
	}
	info, err := writeArchive(root, p.entries, w)
	info.Skipped = p.skipped
	if err != nil {
		return info, fmt.Errorf("directory %s: %w", shown, err)
	}
	return info, nil
}

// entry is one path to archive, found by the planner.
type entry struct {
	rel   string      // slash-separated, relative to the root
	mode  fs.FileMode // type bits and permission bits
	size  int64       // regular files only
	mtime time.Time
	link  string // symlinks only
}

// errStopWalk ends a walk that has counted enough to report a limit.
var errStopWalk = errors.New("stop walk")

// planner walks a tree, applying the ignore rules and counting against the
// limits. Once over a limit it keeps counting (metadata only, up to
// countCap entries) so that the error can say how big the tree is.
type planner struct {
	root      *os.Root
	lim       Limits
	ign       *ignoreMatcher
	hasIgnore bool

	entries  []entry
	skipped  []Skipped
	count    int
	bytes    int64
	over     bool
	countCap int
	capped   bool
}

func (p *planner) walk(rel string) error {
	name := rel
	if name == "" {
		name = "."
	}
	f, err := p.root.Open(filepath.FromSlash(name))
	if err != nil {
		return err
	}
	des, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	sort.Slice(des, func(i, j int) bool { return des[i].Name() < des[j].Name() })
	for _, de := range des {
		child := path.Join(rel, de.Name())
		t := de.Type()
		if !t.IsDir() && !t.IsRegular() && t&fs.ModeSymlink == 0 {
			continue // device, socket, fifo
		}
		keep := rel == "" && de.Name() == IgnoreFile && t.IsRegular()
		if !keep && p.ign.excluded(child, t.IsDir()) {
			continue
		}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed while walking
		}
		if err != nil {
			return err
		}
		e := entry{rel: child, mode: fi.Mode().Type() | fi.Mode().Perm(), mtime: fi.ModTime()}
		if t.IsRegular() {
			e.size = fi.Size()
		}
		if t&fs.ModeSymlink != 0 {
			if e.link, err = p.root.Readlink(filepath.FromSlash(child)); err != nil {
				return err
			}
			if err := p.checkLink(child, e.link); err != nil {
				p.skipped = append(p.skipped, Skipped{Path: child, Reason: err.Error()})
				continue
			}
		}
		p.count++
		p.bytes += e.size
		if p.count > p.lim.MaxFiles || p.bytes > p.lim.MaxBytes {
			p.over = true
			p.entries = nil
		}
		if !p.over {
			p.entries = append(p.entries, e)
		}
		if p.over && p.count >= p.countCap {
			p.capped = true
			return errStopWalk
		}
		if t.IsDir() {
			if err := p.walk(child); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkLink says why the symlink at name (slash-separated) with the given
// target cannot be archived: it could resolve outside the root (see
// checkLinkTarget), or it does not resolve to anything inside it, directly
// or through other links.
func (p *planner) checkLink(name, target string) error {
	if err := checkLinkTarget(name, target); err != nil {
		return err
	}
	if _, err := p.root.Stat(filepath.FromSlash(name)); err != nil {
		return fmt.Errorf("symlink %s points to %s, which does not exist inside the directory", name, target)
	}
	return nil
}

// limitError returns the *LimitError for a walk that went over a limit, or
// nil.
func (p *planner) limitError(shown string) error {
	if !p.over {
		return nil
	}
	after := ""
	if p.hasIgnore {
		after = " after " + IgnoreFile
	}
	atLeast := ""
	if p.capped {
		atLeast = "at least "
	}
	if p.bytes > p.lim.MaxBytes {
		return &LimitError{msg: fmt.Sprintf(
			"directory %s is larger than the %s limit (it has %s%s%s); exclude files with a %s",
			shown, formatSize(p.lim.MaxBytes, false), atLeast, formatSize(p.bytes, true), after, IgnoreFile)}
	}
	return &LimitError{msg: fmt.Sprintf(
		"directory %s has more than the limit of %d files, directories and symlinks (it has %s%d%s); exclude files with a %s",
		shown, p.lim.MaxFiles, atLeast, p.count, after, IgnoreFile)}
}

// writeArchive writes the planned entries as tar.gz to w.
func writeArchive(root *os.Root, entries []entry, w io.Writer) (Info, error) {
	var info Info
	gz := gzip.NewWriter(w) // no name and a zero time in the header: deterministic
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.rel,
			Mode:    int64(e.mode.Perm()),
			ModTime: e.mtime.Truncate(time.Second),
		}
		switch {
		case e.mode.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case e.mode&fs.ModeSymlink != 0:
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.link
		default:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = e.size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return info, fmt.Errorf("archiving %s: %w", e.rel, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if err := copyFile(root, e, tw); err != nil {
				return info, err
			}
		}
		info.Files++
		info.Bytes += hdr.Size
	}
	if err := tw.Close(); err != nil {
		return info, fmt.Errorf("finishing archive: %w", err)
	}
	if err := gz.Close(); err != nil {
		return info, fmt.Errorf("finishing archive: %w", err)
	}
	return info, nil
}

// copyFile copies exactly e.size bytes of the file e into tw. The file is
// opened through root, so a file swapped for a symlink to somewhere outside
// the tree after the walk cannot be read.
func copyFile(root *os.Root, e entry, tw io.Writer) error {
	f, err := root.Open(filepath.FromSlash(e.rel))
	if err != nil {
		return fmt.Errorf("archiving %s: %w", e.rel, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("archiving %s: %w", e.rel, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != e.size {
		return fmt.Errorf("archiving %s: the file changed while it was being archived; try again", e.rel)
	}
	if _, err := io.CopyN(tw, f, e.size); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("archiving %s: the file changed while it was being archived; try again", e.rel)
		}
		return fmt.Errorf("archiving %s: %w", e.rel, err)
	}
	return nil
}

// checkLinkTarget returns an error if a symlink at name (slash-separated,
// relative to the root) with the given target could resolve outside the
// root. The target must be relative; it may climb with ".." only at its
// start, and no higher than the root. ".." after a name is refused even when
// it looks harmless, because the name may itself be a symlink ("a/.." with a
// -> "." leaves the root), and refusing it keeps the check lexical and sound.
func checkLinkTarget(name, target string) error {
	if target == "" {
		return fmt.Errorf("symlink %s has an empty target", name)
	}
	if path.IsAbs(target) || filepath.IsAbs(target) || filepath.VolumeName(target) != "" {
		return fmt.Errorf("symlink %s points to the absolute path %s", name, target)
	}
	depth := 0
	if d := path.Dir(name); d != "." {
		depth = strings.Count(d, "/") + 1
	}
	descended := false
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			if descended {
				return fmt.Errorf("symlink %s points to %s, which goes back up (..) after a name; only leading ../ is allowed", name, target)
			}
			depth--
			if depth < 0 {
				return fmt.Errorf("symlink %s points to %s, outside the directory", name, target)
			}
		default:
			descended = true
		}
	}
	return nil
}
