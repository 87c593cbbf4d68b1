package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// setIdentity makes cmd run as spec's user: a plain credential switch when
// this process is root, or a user namespace of its own mapping that user to
// this process's (namespace-root) user.
func setIdentity(cmd *syscall.SysProcAttr, spec Spec) error {
	switch {
	case spec.User != nil && spec.UserNS != nil:
		return errors.New("proc: User and UserNS are exclusive")
	case spec.User != nil:
		cmd.Credential = &syscall.Credential{Uid: spec.User.UID, Gid: spec.User.GID, Groups: []uint32{spec.User.GID}}
	case spec.UserNS != nil:
		// The new user namespace comes with a mount namespace owned by it:
		// the copied mounts are locked together, so the process cannot
		// unmount what hides the agent's files.
		cmd.Cloneflags |= syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
		cmd.UidMappings = []syscall.SysProcIDMap{{ContainerID: int(spec.UserNS.UID), HostID: 0, Size: 1}}
		cmd.GidMappings = []syscall.SysProcIDMap{{ContainerID: int(spec.UserNS.GID), HostID: 0, Size: 1}}
		cmd.GidMappingsEnableSetgroups = false
	}
	return nil
}

// inMounts runs start on an OS thread of its own whose mount namespace is
// a private copy of this process's with m applied; a process started there
// (fork happens on the calling thread) starts in that namespace. The thread
// is discarded afterwards, never reused by other goroutines. user, when
// set, is who must reach the bound paths.
func inMounts(m *Mounts, user *User, start func() error) error {
	if m == nil {
		return start()
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with this goroutine, and the Go
		// runtime makes no new threads from it.
		runtime.LockOSThread()
		if err := m.apply(user); err != nil {
			errc <- fmt.Errorf("proc: preparing the mount namespace: %w", err)
			return
		}
		errc <- start()
	}()
	return <-errc
}

// apply makes the calling thread's mount namespace private and sets it up.
// Where user cannot search a directory on the way to a bound path, that
// directory is covered too, so the path is reachable and nothing beside it
// is seen. Mounts are made outermost first, so a bind over /tmp does not
// hide a bound path below it.
func (m *Mounts) apply(user *User) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	// Nothing mounted here may reach the host; host mounts still arrive.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("making / a slave: %w", err)
	}
	hide := m.Hide
	if user != nil {
		for _, b := range m.Bind {
			if d := firstUnsearchable(filepath.Dir(b.Path), *user); d != "" {
				hide = append(hide, d)
			}
		}
	}
	// Keep a handle on every path that stays visible before anything is
	// covered, then put each back in its place.
	type op struct {
		path string
		bind *Bind
		fd   int
		dir  bool
	}
	var ops []op
	defer func() {
		for _, o := range ops {
			if o.bind != nil {
				unix.Close(o.fd)
			}
		}
	}()
	for _, b := range m.Bind {
		fd, err := unix.Open(b.Source(), unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening %s: %w", b.Source(), err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return err
		}
		ops = append(ops, op{path: filepath.Clean(b.Path), bind: &b, fd: fd, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR})
	}
	for _, h := range outermost(hide) {
		ops = append(ops, op{path: h})
	}
	depth := func(p string) int { return strings.Count(p, "/") }
	sort.SliceStable(ops, func(i, j int) bool { return depth(ops[i].path) < depth(ops[j].path) })
	var covers []string
	for _, o := range ops {
		if o.bind == nil {
			covered, err := cover(o.path)
			if err != nil {
				return err
			}
			if covered {
				covers = append(covers, o.path)
			}
			continue
		}
		if o.dir {
			if err := os.MkdirAll(o.path, 0o555); err != nil {
				return err
			}
		} else {
			if err := os.MkdirAll(filepath.Dir(o.path), 0o555); err != nil {
				return err
			}
			if f, err := os.OpenFile(o.path, os.O_CREATE|os.O_WRONLY, 0o444); err == nil {
				f.Close()
			}
		}
		src := "/proc/self/fd/" + strconv.Itoa(o.fd)
		if err := unix.Mount(src, o.path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("binding %s: %w", o.path, err)
		}
		if o.bind.ReadOnly {
			if err := unix.Mount("", o.path, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
				return fmt.Errorf("making %s read-only: %w", o.path, err)
			}
		}
	}
	for _, c := range covers {
		if err := unix.Mount("", c, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("making the cover of %s read-only: %w", c, err)
		}
	}
	return nil
}

// cover hides path: a directory under an empty tmpfs, anything else under
// an empty file. A path that does not exist (here) needs nothing.
func cover(path string) (bool, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case fi.IsDir():
		if err := unix.Mount("tmpfs", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0555,size=256k,nr_inodes=512"); err != nil {
			return false, fmt.Errorf("covering %s: %w", path, err)
		}
		return true, nil
	}
	if err := unix.Mount("/dev/null", path, "", unix.MS_BIND, ""); err != nil {
		return false, fmt.Errorf("covering %s: %w", path, err)
	}
	return false, nil
}

// Reachable reports whether u may search every directory of path, as the
// host shows it: whether a process of u can use a file below it.
func Reachable(path string, u User) bool { return firstUnsearchable(path, u) == "" }

// firstUnsearchable returns the outermost directory of path (itself
// included) that u may not search, or "".
func firstUnsearchable(path string, u User) string {
	path = filepath.Clean(path)
	for i := 1; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' {
			continue
		}
		dir := path[:i]
		var st unix.Stat_t
		if unix.Stat(dir, &st) != nil {
			return ""
		}
		search := st.Mode&0o001 != 0 ||
			st.Uid == u.UID && st.Mode&0o100 != 0 ||
			st.Gid == u.GID && st.Mode&0o010 != 0
		if !search {
			return dir
		}
	}
	return ""
}

// outermost returns the paths, cleaned, without those inside another one.
func outermost(paths []string) []string {
	var out []string
	for _, p := range paths {
		p = filepath.Clean(p)
		inside := false
		for _, q := range paths {
			q = filepath.Clean(q)
			if q != p && strings.HasPrefix(p, q+"/") {
				inside = true
				break
			}
		}
		if !inside && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// delegate lets uid move itself into the cgroup (v1: the join script runs
// as that user after the credential switch).
func (c *cgroup) delegate(uid, gid uint32) error {
	for _, f := range c.procsFiles() {
		if err := os.Chown(f, int(uid), int(gid)); err != nil {
			return fmt.Errorf("cgroup: delegating %s: %w", f, err)
		}
	}
	return nil
}
