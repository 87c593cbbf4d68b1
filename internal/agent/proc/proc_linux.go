package proc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stopExtra is how long Stop keeps killing after the grace period before it
// gives up.
const stopExtra = 5 * time.Second

// joinScript makes the shell that runs it a member of the cgroups whose
// cgroup.procs files are its first arguments, then executes the rest: the
// user's program starts inside the cgroups, so none of its descendants can
// be created outside them. $1 is the number of files.
const joinScript = `n=$1; shift
while [ "$n" -gt 0 ]; do
	echo $$ > "$1" || { echo "paddock: cannot join cgroup $1" >&2; exit 125; }
	shift; n=$((n-1))
done
exec "$@"`

func start(spec Spec) (*Process, error) { return startOn(spec, defaultHost()) }

// startOn is Start on a given host description, so that tests can exercise
// the process-group-only path on a host with cgroups.
func startOn(spec Spec, h *host) (*Process, error) {
	if err := validName(spec.Name); err != nil {
		return nil, err
	}
	if !(spec.Cores >= 0) || math.IsInf(spec.Cores, 0) || spec.MemoryBytes < 0 {
		return nil, fmt.Errorf("proc: invalid limits for %s: cores %v, memory %d: want 0 (none) or positive", spec.Name, spec.Cores, spec.MemoryBytes)
	}
	path, err := lookPath(spec.Path, spec.Env, spec.Dir)
	if err != nil {
		return nil, err
	}
	if !names.claim(spec.Name) {
		return nil, fmt.Errorf("%w: %s is used by a process not cleaned up yet", errCgroupInUse, spec.Name)
	}
	p := &Process{
		name:   spec.Name,
		exited: make(chan struct{}),
		done:   make(chan struct{}),
	}
	if h.mode == modeNone {
		p.limits = "no cgroups (" + h.reason + ")"
	} else {
		cg, err := h.create(spec.Name, spec.Cores, spec.MemoryBytes)
		switch {
		case errors.Is(err, errCgroupInUse):
			names.release(spec.Name)
			return nil, err
		case err != nil:
			p.limits = "no cgroups (" + err.Error() + ")"
		default:
			p.cg = cg
			p.limits = describeLimits(h.mode.String(), spec.Cores, spec.MemoryBytes)
		}
	}

	cmd := &exec.Cmd{
		Path:        path,
		Args:        append([]string{path}, spec.Args...),
		Dir:         spec.Dir,
		Env:         spec.Env,
		Stdin:       spec.Stdin,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := setIdentity(cmd.SysProcAttr, spec); err != nil {
		p.release()
		return nil, err
	}
	var cgroupFD *os.File
	if p.cg != nil {
		joined := false
		if p.cg.v2 && spec.User != nil {
			// v2 lets a process move itself only with write access to the
			// common ancestor: the child is cloned straight into its cgroup.
			if cgroupFD, err = os.Open(p.cg.dirs[0]); err == nil {
				cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD, joined = true, int(cgroupFD.Fd()), true
			}
		} else if spec.User != nil {
			err = p.cg.delegate(spec.User.UID, spec.User.GID)
		}
		if err != nil {
			p.release()
			return nil, err
		}
		if !joined {
			files := p.cg.procsFiles()
			args := []string{"/bin/sh", "-c", joinScript, "paddock-join", strconv.Itoa(len(files))}
			args = append(args, files...)
			cmd.Path = "/bin/sh"
			cmd.Args = append(append(args, path), spec.Args...)
		}
	}
	childEnds, err := p.setupOutput(cmd, spec.Stdout, spec.Stderr)
	if err == nil {
		err = inMounts(spec.Mounts, spec.User, cmd.Start)
	}
	if cgroupFD != nil {
		cgroupFD.Close()
	}
	for _, f := range childEnds {
		f.Close()
	}
	if err != nil {
		p.release()
		return nil, fmt.Errorf("proc: start %s: %w", spec.Name, err)
	}
	p.cmd = cmd
	p.pid = cmd.Process.Pid
	for _, o := range p.outs {
		go o.copy()
	}
	go p.waitMain()
	return p, nil
}

// release undoes what a failed start made: output pipes, the cgroup, the
// name.
func (p *Process) release() {
	for _, o := range p.outs {
		o.r.Close()
	}
	if p.cg != nil {
		p.cg.remove()
	}
	names.release(p.name)
}

// setupOutput gives cmd its stdout and stderr: files directly, other writers
// through pipes copied by this package. It returns the child's pipe ends,
// which the caller closes once the child has started.
func (p *Process) setupOutput(cmd *exec.Cmd, stdout, stderr io.Writer) ([]*os.File, error) {
	var childEnds []*os.File
	dest := func(w io.Writer) (io.Writer, error) {
		if w == nil {
			return nil, nil
		}
		if f, ok := w.(*os.File); ok {
			return f, nil
		}
		r, cw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		p.outs = append(p.outs, newOutPipe(r, w))
		childEnds = append(childEnds, cw)
		return cw, nil
	}
	var err error
	if cmd.Stdout, err = dest(stdout); err != nil {
		return childEnds, err
	}
	if stderr != nil && sameWriter(stdout, stderr) {
		cmd.Stderr = cmd.Stdout
		return childEnds, nil
	}
	cmd.Stderr, err = dest(stderr)
	return childEnds, err
}

// sameWriter reports whether a and b are the same writer; writers of
// uncomparable types are never the same.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// waitMain waits for the main process to exit without reaping it, so that
// its pid and process group id stay reserved until Stop or Cleanup reaps it.
func (p *Process) waitMain() {
	p.exitCode, p.waitErr = waitNoReap(p.pid)
	close(p.exited)
	for _, o := range p.outs {
		o.flush()
	}
	close(p.done)
}

// waitNoReap waits for the child pid to exit and returns its exit code,
// leaving it a zombie (waitid with WNOWAIT).
func waitNoReap(pid int) (int, error) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("proc: wait for %d: %w", pid, err)
		}
		break
	}
	// For SIGCHLD the siginfo union after the three int fields (padded to
	// pointer alignment) holds si_pid, si_uid and si_status.
	raw := (*[unsafe.Sizeof(info)]byte)(unsafe.Pointer(&info))
	off := 12
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 16
	}
	status := int(int32(binary.NativeEndian.Uint32(raw[off+8:])))
	const cldExited, cldKilled, cldDumped = 1, 2, 3 // si_code for SIGCHLD
	switch info.Code {
	case cldExited:
		return status, nil
	case cldKilled, cldDumped:
		return 128 + status, nil
	}
	return -1, fmt.Errorf("proc: wait for %d: unexpected si_code %d", pid, info.Code)
}

func (p *Process) stop(grace time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped.Load() {
		return nil // the tree was found gone before
	}
	start := time.Now()
	graceEnd, deadline := start.Add(grace), start.Add(grace+stopExtra)
	p.signal(unix.SIGTERM)
	p.signal(unix.SIGCONT) // a stopped process acts on SIGTERM only once continued
	killing := false
	exited := p.exited
	interval := 2 * time.Millisecond
	for {
		if p.treeGone() {
			p.reap()
			return nil
		}
		now := time.Now()
		if now.After(deadline) {
			return fmt.Errorf("proc: stop %s: processes %v still alive %v after SIGKILL", p.name, p.alive(), now.Sub(graceEnd).Round(time.Millisecond))
		}
		if !killing && !now.Before(graceEnd) {
			killing = true
		}
		if killing {
			// Every round: a process may have forked since the last one.
			p.signal(unix.SIGKILL)
		}
		d := interval
		if r := graceEnd.Sub(now); !killing && r < d {
			d = max(r, time.Millisecond) // wake up for SIGKILL on time
		}
		wake := time.NewTimer(d)
		select {
		case <-wake.C:
		case <-exited:
			exited = nil
			wake.Stop()
		}
		interval = min(2*interval, 50*time.Millisecond)
	}
}

// treeGone reports whether the main process has exited and no process of
// the tree is alive.
func (p *Process) treeGone() bool {
	select {
	case <-p.exited:
	default:
		return false
	}
	return len(p.alive()) == 0
}

// reap reaps the main process, which releases its pid. Callers hold p.mu and
// have checked that the tree is gone.
func (p *Process) reap() {
	if p.reaped.Load() {
		return
	}
	p.cmd.Process.Wait() // its status was read by waitNoReap
	p.reaped.Store(true)
}

// signal sends sig to the process group, while the unreaped main process
// reserves its id, and to every member of the cgroup.
func (p *Process) signal(sig unix.Signal) {
	if !p.reaped.Load() {
		unix.Kill(-p.pid, sig)
	}
	if p.cg != nil {
		if sig == unix.SIGKILL {
			p.cg.kill() // v2: kills every member, forks included, at once
		}
		signalMembers(p.cg, sig)
	}
}

// signalMembers signals the cgroup's members without a pid-reuse race: it
// opens a pidfd for each member, then signals only those still listed as
// members afterwards. A pid listed then was the same process when its pidfd
// was opened, or the pidfd refers to a dead process and the signal fails.
func signalMembers(cg *cgroup, sig unix.Signal) {
	before := cg.members()
	fds := make(map[int]int, len(before))
	for _, pid := range before {
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.ENOSYS) {
			unix.Kill(pid, sig) // kernel < 5.3: small race, best effort
			continue
		}
		if err == nil {
			fds[pid] = fd
		}
	}
	if len(fds) == 0 {
		return
	}
	after := cg.members()
	for pid, fd := range fds {
		if slices.Contains(after, pid) {
			unix.PidfdSendSignal(fd, sig, nil, 0)
		}
		unix.Close(fd)
	}
}

func (p *Process) alive() []int {
	var pids []int
	if p.cg != nil {
		for _, pid := range p.cg.members() {
			if running(pid) {
				pids = append(pids, pid)
			}
		}
		// The main process may not have joined the cgroup yet.
		select {
		case <-p.exited:
		default:
			if !slices.Contains(pids, p.pid) {
				pids = append(pids, p.pid)
			}
		}
	} else if !p.reaped.Load() {
		pids = groupMembers(p.pid)
	}
	slices.Sort(pids)
	return pids
}

func (p *Process) cleanup() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cleaned {
		return nil
	}
	if !p.reaped.Load() {
		if !p.treeGone() {
			return fmt.Errorf("proc: cleanup %s: processes %v still alive; Stop it first", p.name, p.alive())
		}
		p.reap()
	}
	for _, o := range p.outs {
		o.close(500 * time.Millisecond)
	}
	if p.cg != nil {
		if err := p.cg.remove(); err != nil {
			return err
		}
	}
	p.cleaned = true
	names.release(p.name)
	return nil
}

// nameSet holds the names of this agent's processes not cleaned up yet: a
// cgroup directory of that name is theirs even while it is still empty.
type nameSet struct {
	mu    sync.Mutex
	inUse map[string]bool
}

var names = &nameSet{inUse: map[string]bool{}}

func (s *nameSet) claim(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inUse[name] {
		return false
	}
	s.inUse[name] = true
	return true
}

func (s *nameSet) release(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inUse, name)
}

// validName checks a Spec.Name: it becomes a directory name.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 200 {
		return fmt.Errorf("proc: invalid name %q: want 1 to 200 of [A-Za-z0-9._-], not \".\" or \"..\"", name)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("proc: invalid name %q: only [A-Za-z0-9._-] allowed", name)
		}
	}
	return nil
}

// lookPath resolves file like a shell would with environment env: a name
// without a slash is searched in env's PATH (relative PATH entries are
// ignored); a path with a slash is used as it is, relative to dir.
func lookPath(file string, env []string, dir string) (string, error) {
	if file == "" {
		return "", fmt.Errorf("proc: empty path: %w", exec.ErrNotFound)
	}
	if strings.Contains(file, "/") {
		check := file
		if !filepath.IsAbs(file) && dir != "" {
			check = filepath.Join(dir, file)
		}
		if err := executable(check); err != nil {
			return "", fmt.Errorf("proc: %s: %w", file, err)
		}
		if strings.HasPrefix(file, "-") {
			file = "./" + file // not an option to exec
		}
		return file, nil
	}
	pathEnv, found := os.Getenv("PATH"), env == nil
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv, found = v, true // the last one wins, as in exec
		}
	}
	if found {
		for _, d := range filepath.SplitList(pathEnv) {
			if !filepath.IsAbs(d) {
				continue
			}
			if p := filepath.Join(d, file); executable(p) == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("proc: %s not found in PATH: %w", file, exec.ErrNotFound)
}

func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file: %w", path, os.ErrPermission)
	}
	return nil
}

// describeLimits is the Limits text with cgroups.
func describeLimits(mode string, cores float64, mem int64) string {
	var parts []string
	if cores > 0 {
		unit := "cores"
		if cores == 1 {
			unit = "core"
		}
		parts = append(parts, fmt.Sprintf("cpu %s %s", strconv.FormatFloat(cores, 'f', -1, 64), unit))
	}
	if mem > 0 {
		parts = append(parts, "memory "+formatBytes(mem))
	}
	if len(parts) == 0 {
		return "cgroup " + mode + ": no cpu or memory limit"
	}
	return "cgroup " + mode + ": " + strings.Join(parts, ", ")
}

func formatBytes(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	st, ok := readStat(pid)
	return ok && st.state != 'Z' && st.state != 'X'
}

type procStat struct {
	state byte
	pgrp  int
}

// readStat reads the state and process group of pid from /proc/<pid>/stat.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// "pid (comm) state ppid pgrp ...": comm may contain spaces and ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return procStat{}, false
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, false
	}
	return procStat{state: f[0][0], pgrp: pgrp}, true
}

// groupMembers returns the running processes of process group pgid.
func groupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok && st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids
}
