package proc

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/testenv"
)

const python = "/usr/bin/python3"

// syncBuffer is a buffer safe for the copy goroutines and the test.
type syncBuffer = testenv.Buffer

var nameSeq atomic.Int64

// testName is a cgroup name unique to this test binary and call.
func testName(t *testing.T) string {
	safe := regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(t.Name(), "_")
	return fmt.Sprintf("test-%d-%d-%s", os.Getpid(), nameSeq.Add(1), safe)
}

// markerEnv marks the processes of one test so that /proc can be searched
// for them, whichever session or cgroup they ended up in.
func markerEnv(name string) string { return "PADDOCK_PROC_TEST=" + name }

// shSpec runs script with /bin/sh -c in a fresh, marked environment.
func shSpec(t *testing.T, script string) Spec {
	name := testName(t)
	return Spec{
		Name: name,
		Path: "sh",
		Args: []string{"-c", script},
		Env:  []string{"PATH=/usr/bin:/bin", markerEnv(name)},
	}
}

var pgroupOnly = &host{mode: modeNone, reason: "disabled by test"}

// startT starts spec on h (nil: this host) and makes sure the tree is gone
// and cleaned up when the test ends.
func startT(t *testing.T, spec Spec, h *host) *Process {
	t.Helper()
	if h == nil {
		h = defaultHost()
	}
	p, err := startOn(spec, h)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(0); err != nil {
			t.Errorf("cleanup: Stop: %v", err)
		}
		if err := p.Cleanup(); err != nil {
			t.Errorf("cleanup: Cleanup: %v", err)
		}
		killMarked(t, spec.Env)
	})
	return p
}

// killMarked kills what is left of a test's processes (after a failure).
func killMarked(t *testing.T, env []string) {
	for _, kv := range env {
		if m, ok := strings.CutPrefix(kv, markerEnv("")); ok {
			for pid := range markedProcs(m) {
				t.Errorf("process %d of the test was left running; killing it", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// markedProcs returns the running processes whose environment carries the
// marker, with their command lines.
func markedProcs(marker string) map[int]string {
	want := []byte("\x00" + markerEnv(marker) + "\x00")
	found := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !running(pid) {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, env...), want) {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		found[pid] = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	return found
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitT is Wait bounded in time.
func waitT(t *testing.T, p *Process) int {
	t.Helper()
	type result struct {
		code int
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		code, err := p.Wait()
		ch <- result{code, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Wait: %v", r.err)
		}
		return r.code
	case <-time.After(10 * time.Second):
		t.Fatalf("Wait did not return in 10 s")
		return 0
	}
}

func needCgroups(t *testing.T) {
	t.Helper()
	if mode := CgroupMode(); strings.HasPrefix(mode, "none") {
		t.Skipf("cgroups not usable on this host: %s", mode)
	}
}

// modes runs f with cgroups (where usable) and with the process group only.
func modes(t *testing.T, f func(t *testing.T, h *host)) {
	t.Run("cgroup", func(t *testing.T) {
		t.Parallel()
		needCgroups(t)
		f(t, defaultHost())
	})
	t.Run("pgroup", func(t *testing.T) {
		t.Parallel()
		f(t, pgroupOnly)
	})
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"kill -KILL $$", 128 + 9},
		{"kill -TERM $$", 128 + 15},
	} {
		t.Run(tc.script, func(t *testing.T) {
			modes(t, func(t *testing.T, h *host) {
				p := startT(t, shSpec(t, tc.script), h)
				if got := waitT(t, p); got != tc.want {
					t.Errorf("exit code %d, want %d", got, tc.want)
				}
				// Wait may be called again.
				if got, err := p.Wait(); got != tc.want || err != nil {
					t.Errorf("second Wait = %d, %v", got, err)
				}
			})
		})
	}
}

func TestOutput(t *testing.T) {
	t.Parallel()
	t.Run("separate", func(t *testing.T) {
		modes(t, func(t *testing.T, h *host) {
			var out, errOut syncBuffer
			spec := shSpec(t, "echo out; echo err >&2; echo out2")
			spec.Stdout, spec.Stderr = &out, &errOut
			p := startT(t, spec, h)
			if code := waitT(t, p); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			if out.String() != "out\nout2\n" || errOut.String() != "err\n" {
				t.Errorf("stdout %q, stderr %q", out.String(), errOut.String())
			}
		})
	})
	t.Run("same writer in order", func(t *testing.T) {
		t.Parallel()
		var both syncBuffer
		spec := shSpec(t, "echo a; echo b >&2; echo c; echo d >&2")
		spec.Stdout, spec.Stderr = &both, &both
		p := startT(t, spec, nil)
		waitT(t, p)
		if got := both.String(); got != "a\nb\nc\nd\n" {
			t.Errorf("output %q", got)
		}
	})
	t.Run("file and nil", func(t *testing.T) {
		t.Parallel()
		f, err := os.Create(filepath.Join(t.TempDir(), "out"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		spec := shSpec(t, "echo to-file; echo lost >&2")
		spec.Stdout = f
		p := startT(t, spec, nil)
		waitT(t, p)
		if b, _ := os.ReadFile(f.Name()); string(b) != "to-file\n" {
			t.Errorf("file has %q", b)
		}
	})
	t.Run("flushed while a descendant holds the pipe", func(t *testing.T) {
		// The background sleep keeps stdout open, so the pipe never reaches
		// EOF; Wait must still return promptly with all the main process's
		// output (more than a pipe buffer) written.
		modes(t, func(t *testing.T, h *host) {
			var out syncBuffer
			spec := shSpec(t, `sleep 1000 & head -c 300000 /dev/zero | tr '\0' x; echo end`)
			spec.Stdout = &out
			p := startT(t, spec, h)
			start := time.Now()
			if code := waitT(t, p); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Wait took %v", d)
			}
			if got := out.String(); len(got) != 300004 || !strings.HasSuffix(got, "xend\n") {
				t.Errorf("got %d bytes ending %q, want 300004 ending \"xend\\n\"", len(got), got[max(0, len(got)-10):])
			}
		})
	})
}

func TestEnvAndDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	spec := shSpec(t, `printf '%s|%s|%s' "$FOO" "$(pwd -P)" "${HOME-unset}"`)
	spec.Env = append(spec.Env, "FOO=bar baz")
	spec.Dir, spec.Stdout = dir, &out
	p := startT(t, spec, nil)
	waitT(t, p)
	if want := "bar baz|" + real + "|unset"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestLookPath(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "hello"), []byte("#!/bin/sh\necho hi \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Run("in Env PATH", func(t *testing.T) {
		var out syncBuffer
		spec := shSpec(t, "")
		spec.Path, spec.Args, spec.Stdout = "hello", []string{"there"}, &out
		spec.Env = append(spec.Env, "PATH="+bin+":/usr/bin:/bin") // the last PATH wins
		waitT(t, startT(t, spec, nil))
		if out.String() != "hi there\n" {
			t.Errorf("output %q", out.String())
		}
	})
	t.Run("relative to Dir", func(t *testing.T) {
		var out syncBuffer
		spec := shSpec(t, "")
		spec.Path, spec.Args, spec.Dir, spec.Stdout = "./hello", nil, bin, &out
		waitT(t, startT(t, spec, nil))
		if out.String() != "hi\n" {
			t.Errorf("output %q", out.String())
		}
	})
	t.Run("not found", func(t *testing.T) {
		spec := shSpec(t, "")
		spec.Path = "hello" // not in PATH=/usr/bin:/bin
		if _, err := Start(spec); !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("Start = %v, want ErrNotFound", err)
		}
	})
	t.Run("bad limits", func(t *testing.T) {
		for _, l := range []struct {
			cores float64
			mem   int64
		}{{-1, 0}, {math.NaN(), 0}, {math.Inf(1), 0}, {0, -1}} {
			spec := shSpec(t, "exit 0")
			spec.Cores, spec.MemoryBytes = l.cores, l.mem
			if _, err := Start(spec); err == nil {
				t.Errorf("Start with cores %v, memory %d succeeded", l.cores, l.mem)
			}
		}
	})
	t.Run("bad names", func(t *testing.T) {
		for _, name := range []string{"", ".", "..", "a/b", "run 1", "x\n"} {
			spec := shSpec(t, "exit 0")
			spec.Name = name
			if _, err := Start(spec); err == nil {
				t.Errorf("Start with name %q succeeded", name)
			}
		}
	})
}

// TestStopTree stops a tree whose child ignores SIGTERM (so SIGKILL is needed
// after the grace period) and, with cgroups, whose grandchild double-forked
// into its own session (so only the cgroup finds it).
func TestStopTree(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, h *host) {
		script := `sh -c 'trap "" TERM; sleep 1000; exit 0' &
(setsid sh -c 'sleep 1000; exit 0' &)
wait`
		wantSleeps := 2
		if h.mode == modeNone {
			// Without a cgroup the daemon would escape: do not start it.
			script = `sh -c 'trap "" TERM; sleep 1000; exit 0' &
wait`
			wantSleeps = 1
		}
		spec := shSpec(t, script)
		p := startT(t, spec, h)
		marker := strings.TrimPrefix(spec.Env[1], markerEnv(""))
		waitFor(t, "the sleeps to start", func() bool { return countSleeps(marker) == wantSleeps })
		if len(p.Alive()) < wantSleeps+1 {
			t.Errorf("Alive() = %v, want at least %d processes", p.Alive(), wantSleeps+1)
		}

		const grace = 300 * time.Millisecond
		start := time.Now()
		if err := p.Stop(grace); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if d := time.Since(start); d < grace || d > grace+stopExtra {
			t.Errorf("Stop took %v, want between %v (SIGTERM ignored) and %v", d, grace, grace+stopExtra)
		}
		if alive := p.Alive(); len(alive) != 0 {
			t.Errorf("Alive() after Stop = %v", alive)
		}
		if left := markedProcs(marker); len(left) != 0 {
			t.Errorf("processes left after Stop: %v", left)
		}
		if code := waitT(t, p); code != 128+15 && code != 128+9 {
			t.Errorf("exit code %d, want 143 or 137", code)
		}
		if err := p.Stop(grace); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		checkCleanup(t, p)
	})
}

// countSleeps counts the test's running "sleep 1000" processes.
func countSleeps(marker string) int {
	n := 0
	for _, cmd := range markedProcs(marker) {
		if cmd == "sleep 1000" {
			n++
		}
	}
	return n
}

// checkCleanup runs Cleanup twice and checks that the cgroup dirs are gone.
func checkCleanup(t *testing.T, p *Process) {
	t.Helper()
	var dirs []string
	if p.cg != nil {
		dirs = p.cg.dirs
		for _, d := range dirs {
			if _, err := os.Stat(d); err != nil {
				t.Errorf("cgroup dir before Cleanup: %v", err)
			}
		}
	}
	if err := p.Cleanup(); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if err := p.Cleanup(); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup dir %s after Cleanup: %v", d, err)
		}
	}
}

// TestStopAfterWait stops a background child after Wait has seen the main
// process exit: the group is signalled through the unreaped main process.
func TestStopAfterWait(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, h *host) {
		p := startT(t, shSpec(t, "sleep 1000 & exit 0"), h)
		if code := waitT(t, p); code != 0 {
			t.Fatalf("exit code %d", code)
		}
		if alive := p.Alive(); len(alive) != 1 || alive[0] == p.Pid() {
			t.Errorf("Alive() = %v, want only the background sleep", alive)
		}
		if err := p.Cleanup(); err == nil {
			t.Errorf("Cleanup succeeded with a process alive")
		}
		start := time.Now()
		if err := p.Stop(5 * time.Second); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Stop took %v for a process that obeys SIGTERM", d)
		}
		if alive := p.Alive(); len(alive) != 0 {
			t.Errorf("Alive() after Stop = %v", alive)
		}
		checkCleanup(t, p)
	})
}

// TestStopConcurrent stops right after Start (possibly before the process
// joined its cgroup), from several goroutines, while others Wait.
func TestStopConcurrent(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, h *host) {
		p := startT(t, shSpec(t, "sleep 1000"), h)
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for range 3 {
			wg.Go(func() { errs <- p.Stop(time.Second) })
			wg.Go(func() {
				if code, err := p.Wait(); err != nil || code != 128+15 && code != 128+9 {
					errs <- fmt.Errorf("Wait = %d, %v", code, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if alive := p.Alive(); len(alive) != 0 {
			t.Errorf("Alive() after Stop = %v", alive)
		}
	})
}

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	needCgroups(t)
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no %s: %v", python, err)
	}
	for _, tc := range []struct {
		limit int64
		want  int
	}{
		{64 << 20, 128 + 9}, // OOM-killed
		{512 << 20, 0},
	} {
		t.Run(formatBytes(tc.limit), func(t *testing.T) {
			t.Parallel()
			var out, errOut syncBuffer
			spec := Spec{
				Name: testName(t), Path: python,
				Args:   []string{"-c", `x = b"a" * (300 << 20); print("allocated", len(x) >> 20)`},
				Env:    []string{"PATH=/usr/bin:/bin"},
				Stdout: &out, Stderr: &errOut,
				MemoryBytes: tc.limit,
			}
			p := startT(t, spec, nil)
			if want := "cgroup " + CgroupMode() + ": memory " + formatBytes(tc.limit); p.Limits() != want {
				t.Errorf("Limits() = %q, want %q", p.Limits(), want)
			}
			if code := waitT(t, p); code != tc.want {
				t.Errorf("exit code %d, want %d; stdout %q, stderr %q", code, tc.want, out.String(), errOut.String())
			}
			if hit := p.MemoryLimitHit(); hit != (tc.want != 0) {
				t.Errorf("MemoryLimitHit() = %v with exit code %d", hit, tc.want)
			}
			if tc.want == 0 && out.String() != "allocated 300\n" {
				t.Errorf("stdout %q", out.String())
			}
		})
	}
}

func TestCPULimit(t *testing.T) {
	t.Parallel()
	needCgroups(t)
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no %s: %v", python, err)
	}
	var out syncBuffer
	spec := Spec{
		Name: testName(t), Path: python,
		Args: []string{"-c", `import time
w, c = time.time(), time.process_time()
while time.time() - w < 1.0:
    pass
print("%.3f" % (time.process_time() - c))`},
		Stdout: &out, Stderr: &out,
		Cores: 0.5,
	}
	p := startT(t, spec, nil)
	if want := "cgroup " + CgroupMode() + ": cpu 0.5 cores"; p.Limits() != want {
		t.Errorf("Limits() = %q, want %q", p.Limits(), want)
	}
	if code := waitT(t, p); code != 0 {
		t.Fatalf("exit code %d: %s", code, out.String())
	}
	cpu, err := strconv.ParseFloat(strings.TrimSpace(out.String()), 64)
	if err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	t.Logf("CPU time in 1 s wall under a 0.5-core limit: %.3f s", cpu)
	if cpu > 0.7 || cpu < 0.05 {
		t.Errorf("CPU time %.3f s, want about 0.5 (at most 0.7)", cpu)
	}
}

func TestNameInUse(t *testing.T) {
	t.Parallel()
	needCgroups(t)
	spec := shSpec(t, "sleep 1000")
	startT(t, spec, nil)
	if p, err := Start(spec); !errors.Is(err, errCgroupInUse) {
		if err == nil {
			p.Stop(0)
			p.Cleanup()
		}
		t.Errorf("second Start with the same name = %v, want errCgroupInUse", err)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cores float64
		mem   int64
		want  string
	}{
		{1.5, 512 << 20, "cgroup v1: cpu 1.5 cores, memory 512 MiB"},
		{1, 2 << 30, "cgroup v1: cpu 1 core, memory 2 GiB"},
		{0, 1000, "cgroup v1: memory 1000 bytes"},
		{0.25, 0, "cgroup v1: cpu 0.25 cores"},
		{0, 0, "cgroup v1: no cpu or memory limit"},
	} {
		if got := describeLimits("v1", tc.cores, tc.mem); got != tc.want {
			t.Errorf("describeLimits(%v, %v) = %q, want %q", tc.cores, tc.mem, got, tc.want)
		}
	}

	spec := shSpec(t, "exit 0")
	spec.Cores, spec.MemoryBytes = 1.5, 512<<20
	if p := startT(t, spec, pgroupOnly); p.Limits() != "no cgroups (disabled by test)" {
		t.Errorf("Limits() without cgroups = %q", p.Limits())
	}

	t.Logf("CgroupMode() = %q", CgroupMode())
	if h := detectHost(t.TempDir()); h.mode != modeNone || h.reason == "" {
		t.Errorf("detectHost(empty dir) = %+v, want none with a reason", h)
	}
	needCgroups(t)
	spec = shSpec(t, "exit 0")
	spec.Cores, spec.MemoryBytes = 1.5, 512<<20
	p := startT(t, spec, nil)
	if want := "cgroup " + CgroupMode() + ": cpu 1.5 cores, memory 512 MiB"; p.Limits() != want {
		t.Errorf("Limits() = %q, want %q", p.Limits(), want)
	}
	waitT(t, p)
}

// TestCgroupV2 runs the v2 code path where a v2 hierarchy is mounted beside
// v1 controllers ("hybrid" mode, /sys/fs/cgroup/unified): membership and
// Stop through the cgroup, without limits (the controllers are bound to v1).
func TestCgroupV2(t *testing.T) {
	t.Parallel()
	h := detectHost("/sys/fs/cgroup/unified")
	if defaultHost().mode == modeV2 {
		h = defaultHost()
	}
	if h.mode != modeV2 {
		t.Skipf("no usable cgroup v2 hierarchy: %s", h.reason)
	}
	spec := shSpec(t, `(setsid sh -c 'trap "" TERM; sleep 1000; exit 0' &)
echo started; exec sleep 1000`)
	var out syncBuffer
	spec.Stdout = &out
	p := startT(t, spec, h)
	if want := "cgroup v2: no cpu or memory limit"; p.Limits() != want {
		t.Errorf("Limits() = %q, want %q", p.Limits(), want)
	}
	marker := strings.TrimPrefix(spec.Env[1], markerEnv(""))
	waitFor(t, "two sleeps", func() bool { return countSleeps(marker) == 2 })
	if alive := p.Alive(); len(alive) != 3 {
		t.Errorf("Alive() = %v, want 3 processes (sleep, daemon sh, its sleep)", alive)
	}
	if err := p.Stop(100 * time.Millisecond); err != nil { // the daemon needs SIGKILL
		t.Fatalf("Stop: %v", err)
	}
	if left := markedProcs(marker); len(left) != 0 {
		t.Errorf("processes left after Stop: %v", left)
	}
	checkCleanup(t, p)
}
