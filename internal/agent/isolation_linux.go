package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/paddock-ml/paddock/internal/agent/proc"
	"golang.org/x/sys/unix"
)

// userNSEnv marks an agent that re-executed itself in a user namespace.
const userNSEnv = "PADDOCK_AGENT_USERNS"

// userNSError says why an agent that is not root runs without a user
// namespace ("" when it did not try).
var userNSError string

// EnterUserNamespace re-executes this agent in a user namespace of its own
// where it is root, when it is not root, so that it can give runs mount
// namespaces (see isolateUserNS). It returns whether it did, and then the
// exit code of the agent it ran; this process only waits and passes
// signals on. Where the kernel refuses, the agent goes on here without
// isolation and says why when it starts.
func EnterUserNamespace() (entered bool, code int) {
	if os.Geteuid() == 0 || os.Getenv(userNSEnv) != "" {
		return false, 0
	}
	exe, err := os.Executable()
	if err != nil {
		userNSError = err.Error()
		return false, 0
	}
	// Pdeathsig follows the thread that starts the child: keep it.
	runtime.LockOSThread()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), userNSEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		// The agent dies with this process (a supervisor's SIGKILL).
		Pdeathsig: syscall.SIGKILL,
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		userNSError = fmt.Sprintf("%v: %v", errNoUserNS, err)
		return false, 0
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return true, 128 + int(ws.Signal())
		}
		return true, ee.ExitCode()
	}
	return true, 1
}

// detectIsolation finds this agent's isolation mode and, in a user
// namespace, its user outside it.
func detectIsolation() (isolationMode, proc.User, string) {
	switch {
	case os.Geteuid() == 0 && os.Getenv(userNSEnv) != "":
		id, err := outerIdentity()
		if err != nil {
			return isolateNone, proc.User{}, err.Error()
		}
		if err := probeMountNamespace(); err != nil {
			return isolateNone, proc.User{}, err.Error()
		}
		return isolateUserNS, id, ""
	case os.Geteuid() == 0:
		if err := probeMountNamespace(); err != nil {
			return isolateNone, proc.User{}, err.Error()
		}
		return isolateRoot, proc.User{}, ""
	case userNSError != "":
		return isolateNone, proc.User{}, "the agent is not root and " + userNSError
	}
	return isolateNone, proc.User{}, "the agent is not root and did not enter a user namespace"
}

// outerIdentity reads the user and group this namespace's root maps to.
func outerIdentity() (proc.User, error) {
	read := func(file string) (uint32, error) {
		data, err := os.ReadFile(file)
		if err != nil {
			return 0, err
		}
		f := strings.Fields(string(data))
		if len(f) != 3 || f[0] != "0" || f[2] != "1" {
			return 0, fmt.Errorf("%s maps %q, not one id to 0", file, strings.TrimSpace(string(data)))
		}
		id, err := strconv.ParseUint(f[1], 10, 32)
		return uint32(id), err
	}
	uid, err := read("/proc/self/uid_map")
	if err != nil {
		return proc.User{}, err
	}
	gid, err := read("/proc/self/gid_map")
	return proc.User{UID: uid, GID: gid}, err
}

// probeMountNamespace checks that a mount namespace of a thread's own can
// be made (containers without CAP_SYS_ADMIN cannot).
func probeMountNamespace() error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is discarded
		err := unix.Unshare(unix.CLONE_NEWNS)
		if err == nil {
			err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, "")
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("cannot make a mount namespace: %v", err)
	}
	return nil
}

// notDumpable keeps processes of the same user (runs, in the user
// namespace mode) from reading this process's memory and environment
// through /proc or ptrace.
func notDumpable() { unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }

// ensureOSUser returns an OS user's ids, creating it (a system user with a
// group of its own, no home, no login shell) when it does not exist.
// Several agents on one host may race: useradd's lock is retried, and a
// user made meanwhile by another is used.
func ensureOSUser(name, comment string) (proc.User, error) {
	if id, err := lookupOSUser(name); err == nil {
		return id, nil
	}
	useradd, err := exec.LookPath("useradd")
	if err != nil {
		return proc.User{}, fmt.Errorf("cannot create the OS user %s for runs: useradd is not installed", name)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command(useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", "--comment", comment, name).CombinedOutput()
		if id, lerr := lookupOSUser(name); lerr == nil {
			return id, nil // made by us, or by another agent meanwhile
		}
		var ee *exec.ExitError
		locked := errors.As(err, &ee) && ee.ExitCode() == 10 // cannot lock /etc/passwd
		if err == nil || !locked || time.Now().After(deadline) {
			return proc.User{}, fmt.Errorf("creating the OS user %s for runs: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lookupOSUser(name string) (proc.User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return proc.User{}, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return proc.User{}, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	return proc.User{UID: uint32(uid), GID: uint32(gid)}, err
}
