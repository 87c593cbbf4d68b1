// Package proc starts a run's command as a process tree that can be limited
// and really stopped.
//
// Every process is started in its own process group. Where the host's
// cgroups are usable (Linux, root, cgroup v1 or v2) it is also placed in its
// own cgroup under a "paddock" parent, with the requested CPU and memory
// limits, before the user's program is executed, so that no descendant can
// escape: Stop finds double-forked daemons that left the process group
// through the cgroup. Where cgroups are not usable the process still starts,
// process group only, and Limits says why nothing is enforced.
//
// A Spec may also start the tree as another user (Spec.User, as root) or in
// a user namespace of its own (Spec.UserNS), and in a mount namespace that
// hides paths and binds others back (Spec.Mounts): that is how the agent
// keeps runs from its files and from each other.
//
// Lifecycle: Start, then Wait (any number of times, from any goroutine), Stop
// (any time, more than once, concurrently with Wait), and finally Cleanup
// once the tree is gone. The main process is reaped only by Stop or Cleanup,
// after the whole tree is gone, so that its pid (which is also the process
// group id) can never be recycled while this package may still signal it.
package proc

import (
	"io"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// Spec describes a process to start.
type Spec struct {
	// Name is unique among the processes alive on this host and names the
	// process's cgroup, for example "run-<id>-<attempt>". Only letters,
	// digits, '.', '_' and '-' are allowed.
	Name string
	// Path is the executable. A name without a slash is looked up in the
	// PATH of Env (or of this process when Env is nil); a relative path with
	// a slash is relative to Dir.
	Path string
	// Args are the arguments, without argv[0].
	Args []string
	// Dir is the working directory; empty means this process's.
	Dir string
	// Env is the environment; nil means this process's environment.
	Env []string
	// Stdin is the process's input; nil means none (/dev/null).
	Stdin io.Reader
	// Stdout and Stderr receive the output of the process and of its
	// descendants. They may be the same writer (then the two streams are
	// written in order through one pipe) and may be nil (output discarded).
	// A writer that is not an *os.File is written from a goroutine of this
	// package until Cleanup returns.
	Stdout, Stderr io.Writer
	// Cores is the CPU limit in cores; 0 means none.
	Cores float64
	// MemoryBytes is the memory limit (swap included where the host can
	// tell); 0 means none.
	MemoryBytes int64
	// User, when set, runs the process as that user; this process must be
	// root. UserNS, when set instead, runs it in a user namespace of its
	// own as that user, mapped to this process's user, which must be root
	// in a user namespace of its own (see Mounts).
	User, UserNS *User
	// Mounts, when set, starts the process in a mount namespace of its own.
	Mounts *Mounts
}

// User is a numeric identity.
type User struct {
	UID, GID uint32
}

// Mounts is what a process sees of the file system: Hide covers paths
// (a directory by an empty read-only tmpfs, a file by an empty file), and
// Bind puts paths back, under hidden ones or elsewhere. Nothing done here
// is seen outside the process tree; the tree cannot undo it once it runs
// as a user without privileges (Spec.User or Spec.UserNS).
type Mounts struct {
	Hide []string
	Bind []Bind
}

// Bind makes From (Path when empty) visible at Path.
type Bind struct {
	Path, From string
	ReadOnly   bool
}

// Source is the path that is bound.
func (b Bind) Source() string {
	if b.From != "" {
		return b.From
	}
	return b.Path
}

// Process is a started process tree. Its methods are safe for concurrent use.
type Process struct {
	name   string
	pid    int
	cmd    *exec.Cmd
	cg     *cgroup // nil without cgroups
	limits string
	outs   []*outPipe

	exited   chan struct{} // closed when the main process has exited (not yet reaped)
	done     chan struct{} // closed when exitCode is set and output is flushed
	exitCode int
	waitErr  error

	mu      sync.Mutex  // serialises Stop and Cleanup
	reaped  atomic.Bool // main process reaped: its pid no longer pins the group
	cleaned bool
}

// Start starts the command described by spec in its own process group and,
// where cgroups are usable, in its own cgroup with spec's limits; the
// process joins the cgroup before the user's program runs. It fails when the
// spec is invalid, the executable is not found or the cgroup name is already
// in use; a host without usable cgroups is not an error (see Limits).
func Start(spec Spec) (*Process, error) { return start(spec) }

// Pid returns the process id of the main process, which is also the process
// group id of the tree.
func (p *Process) Pid() int { return p.pid }

// Wait waits for the main process to exit and returns its exit code: the
// status it exited with, or 128+signal when a signal killed it, as a shell
// reports it. It does not wait for background descendants, but all output
// written before the main process exited has been written to Spec.Stdout and
// Spec.Stderr when it returns. It may be called more than once.
func (p *Process) Wait() (exitCode int, err error) {
	<-p.done
	return p.exitCode, p.waitErr
}

// Stop ends the whole tree: SIGTERM to the process group and to every
// process of the cgroup, then, after grace, SIGKILL to all that remain,
// including daemons that left the process group. It returns when no process
// of the tree is left, or an error once grace+5s have passed with some still
// alive. It is safe to call concurrently with Wait and more than once.
func (p *Process) Stop(grace time.Duration) error { return p.stop(grace) }

// Cleanup removes the process's cgroups and releases its output pipes; the
// tree must be gone (the main process exited and, with cgroups, the cgroup
// empty), else it returns an error and changes nothing. It is idempotent.
func (p *Process) Cleanup() error { return p.cleanup() }

// MemoryLimitHit reports whether the kernel killed a process of the tree
// for reaching the memory limit (the cgroup's OOM-kill count); false
// without cgroups or a memory limit. Call it before Cleanup.
func (p *Process) MemoryLimitHit() bool { return p.cg != nil && p.cg.oomKills() > 0 }

// Limits reports what is enforced, for example
// "cgroup v1: cpu 1.5 cores, memory 512 MiB" or "no cgroups (not running as root)".
func (p *Process) Limits() string { return p.limits }

// Alive returns the pids of the tree's processes still alive (zombies
// excluded), sorted: the cgroup's members where there is a cgroup, else the
// process group's.
func (p *Process) Alive() []int { return p.alive() }

// CgroupMode reports how this host's cgroups can be used: "v1", "v2", or
// "none: <reason>".
func CgroupMode() string { return cgroupMode() }
