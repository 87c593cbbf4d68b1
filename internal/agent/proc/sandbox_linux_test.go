package proc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// nobody is the unprivileged user the tests run processes as.
var nobody = &User{UID: 65534, GID: 65534}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("switching users and mount namespaces needs root: `sudo bash scripts/test.sh`")
	}
}

// privateTree makes a tree like an agent's: a private dir with a secret
// and a work dir owned by the run's user inside it.
func privateTree(t *testing.T, base string, owner *User) (private, secret, work string) {
	t.Helper()
	private = filepath.Join(base, "agent")
	work = filepath.Join(private, "work", "runs", "r1")
	if err := os.MkdirAll(work, 0o700); err != nil {
		t.Fatal(err)
	}
	secret = filepath.Join(private, "token")
	if err := os.WriteFile(secret, []byte("pdn_secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if owner != nil {
		if err := os.Chown(work, int(owner.UID), int(owner.GID)); err != nil {
			t.Fatal(err)
		}
	}
	return private, secret, work
}

// A process run as another user in its own mount namespace sees its work
// dir at the same path, but not the agent's files around it, cannot
// uncover them, and nothing it does shows on the host.
func TestUserAndMounts(t *testing.T) {
	needRoot(t)
	t.Parallel()
	modes(t, func(t *testing.T, h *host) {
		private, secret, work := privateTree(t, t.TempDir(), nobody)
		loose := filepath.Join(openDir(t), "loose-secret")
		os.WriteFile(loose, []byte("admin-token\n"), 0o644)
		spec := shSpec(t, `id -u; pwd; echo made > here.txt
cat `+secret+` 2>/dev/null && echo READ-SECRET
cat `+loose+`; echo "loose:$?"
ls `+private+`
umount `+private+` 2>/dev/null && echo UNMOUNTED
echo x > `+private+`/planted 2>/dev/null && echo PLANTED
true`)
		spec.Dir, spec.User = work, nobody
		spec.Mounts = &Mounts{Hide: []string{private, loose, filepath.Join(private, "work")}, Bind: []Bind{{Path: work}}}
		var out syncBuffer
		spec.Stdout, spec.Stderr = &out, &out
		p := startT(t, spec, h)
		if code := waitT(t, p); code != 0 {
			t.Fatalf("exit %d: %s", code, out.String())
		}
		got := out.String()
		for _, bad := range []string{"READ-SECRET", "pdn_secret", "admin-token", "UNMOUNTED", "PLANTED", "token"} {
			if strings.Contains(got, bad) {
				t.Errorf("output has %q:\n%s", bad, got)
			}
		}
		if !strings.HasPrefix(got, "65534\n"+work+"\n") || !strings.Contains(got, "loose:0") {
			t.Errorf("want uid 65534, cwd %s, an empty covered file; got:\n%s", work, got)
		}
		if !strings.Contains(got, "\nwork\n") {
			t.Errorf("the cover should show only the path to the work dir:\n%s", got)
		}
		if b, err := os.ReadFile(filepath.Join(work, "here.txt")); err != nil || string(b) != "made\n" {
			t.Errorf("the work dir is not the real one: %q %v", b, err)
		}
		if b, _ := os.ReadFile(secret); string(b) != "pdn_secret\n" {
			t.Errorf("the host's view changed: %q", b)
		}
		// A new process sees the host's mounts (this process's main thread
		// may be the one left in the namespace, so /proc/self would not).
		if mounts, _ := exec.Command("cat", "/proc/self/mountinfo").Output(); strings.Contains(string(mounts), filepath.Dir(private)) {
			t.Errorf("a mount leaked to the host:\n%s", mounts)
		}
		if h.mode != modeNone && !slices.Contains(p.cg.members(), p.Pid()) && !processExited(p) {
			t.Errorf("the process is not in its cgroup")
		}
	})
}

// openDir is a temporary directory anyone may search.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "paddock-proc-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func processExited(p *Process) bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// A process as another user still joins its cgroup and is stopped through
// it, double-forked daemons included.
func TestUserCgroupStop(t *testing.T) {
	needRoot(t)
	needCgroups(t)
	t.Parallel()
	spec := shSpec(t, `(setsid sh -c 'trap "" TERM; sleep 1000' &)
echo started; exec sleep 1000`)
	spec.User = nobody
	var out syncBuffer
	spec.Stdout = &out
	p := startT(t, spec, nil)
	marker := strings.TrimPrefix(spec.Env[1], markerEnv(""))
	waitFor(t, "two sleeps", func() bool { return countSleeps(marker) == 2 })
	for _, pid := range p.Alive() {
		if st, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil && st.Sys().(*syscall.Stat_t).Uid != nobody.UID {
			t.Errorf("process %d runs as uid %d, want %d", pid, st.Sys().(*syscall.Stat_t).Uid, nobody.UID)
		}
	}
	if n := len(p.Alive()); n != 3 {
		t.Errorf("Alive() has %d processes, want 3 (the daemon joined the cgroup too)", n)
	}
	if err := p.Stop(50 * 1e6); err != nil {
		t.Fatal(err)
	}
	if left := markedProcs(marker); len(left) != 0 {
		t.Errorf("left after Stop: %v", left)
	}
}

// The user-namespace mode, as an agent that is not root uses it: this test
// binary re-runs itself as nobody in a user namespace where it is root,
// and starts a process there.
func TestUserNamespaceMode(t *testing.T) {
	needRoot(t)
	t.Parallel()
	if os.Getenv("PADDOCK_PROC_USERNS_CHILD") != "" {
		t.Skip("inside the child")
	}
	private, secret, work := privateTree(t, openDir(t), nobody)
	if err := exec.Command("chown", "-R", "65534:65534", private).Run(); err != nil {
		t.Fatal(err)
	}
	// nobody must be able to run the test binary.
	exe := filepath.Join(openDir(t), "proc.test")
	if self, err := os.Executable(); err != nil {
		t.Fatal(err)
	} else if data, err := os.ReadFile(self); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	// As nobody first; then (TestUserNamespaceStage) into the namespace.
	cmd := exec.Command(exe, "-test.run=^TestUserNamespaceStage$", "-test.v")
	cmd.Env = append(os.Environ(), "PADDOCK_PROC_USERNS_CHILD="+private+":"+secret+":"+work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "operation not permitted") || strings.Contains(err.Error(), "operation not permitted") {
			t.Skipf("no unprivileged user namespaces here: %v", err)
		}
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestUserNamespaceStage") {
		t.Fatalf("child did not pass:\n%s", out)
	}
}

// TestUserNamespaceStage enters the user namespace for
// TestUserNamespaceMode, as an agent that is not root does.
func TestUserNamespaceStage(t *testing.T) {
	if os.Getenv("PADDOCK_PROC_USERNS_CHILD") == "" || os.Getuid() == 0 {
		t.Skip("helper stage: TestUserNamespaceMode runs it in a child process")
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^TestUserNamespaceChild$", "-test.v")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestUserNamespaceChild") {
		t.Fatalf("child did not pass:\n%s", out)
	}
}

// TestUserNamespaceChild is TestUserNamespaceMode's last stage.
func TestUserNamespaceChild(t *testing.T) {
	arg := os.Getenv("PADDOCK_PROC_USERNS_CHILD")
	if arg == "" || os.Getuid() != 0 {
		t.Skip("helper stage: TestUserNamespaceMode runs it in a child process")
	}
	parts := strings.Split(arg, ":")
	private, secret, work := parts[0], parts[1], parts[2]
	spec := Spec{Name: testName(t), Path: "sh", Dir: work, Env: []string{"PATH=/usr/bin:/bin"},
		Args: []string{"-c", `id -u; cat ` + secret + ` && echo READ-SECRET; umount -l ` + private + ` && echo UNMOUNTED; cat ` + secret + `; cat /proc/$PPID/environ >/dev/null 2>&1 && echo READ-ENVIRON; echo ok > out`}}
	spec.UserNS = nobody
	spec.Mounts = &Mounts{Hide: []string{private}, Bind: []Bind{{Path: work}}}
	var out syncBuffer
	spec.Stdout, spec.Stderr = &out, &out
	p := startT(t, spec, pgroupOnly)
	waitT(t, p)
	got := out.String()
	for _, bad := range []string{"READ-SECRET", "pdn_secret", "UNMOUNTED", "READ-ENVIRON"} {
		if strings.Contains(got, bad) {
			t.Errorf("output has %q:\n%s", bad, got)
		}
	}
	if !strings.HasPrefix(got, "65534\n") {
		t.Errorf("want uid 65534:\n%s", got)
	}
	if b, err := os.ReadFile(filepath.Join(work, "out")); err != nil || string(b) != "ok\n" {
		t.Errorf("the work dir is not writable: %q %v\n%s", b, err, got)
	}
}

func TestOutermost(t *testing.T) {
	got := outermost([]string{"/a/b", "/a", "/c/", "/a/b/c", "/ab", "/c"})
	want := []string{"/a", "/c", "/ab"}
	if !slices.Equal(got, want) {
		t.Errorf("outermost = %v, want %v", got, want)
	}
}
