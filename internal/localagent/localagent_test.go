package localagent

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/testenv"
)

// TestMain doubles as the agent: Spawn starts os.Executable() (this test
// binary) with "agent ...", which then plays a paddock agent that writes
// its pid file and exits on SIGTERM (or, with --ignore-term, only on
// SIGKILL).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		fakeAgent(os.Args[2:])
		return
	}
	os.Exit(m.Run())
}

func fakeAgent(args []string) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	for i, a := range args {
		if a == "--pid-file" && i+1 < len(args) {
			os.WriteFile(args[i+1], []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
			os.WriteFile(args[i+1]+".ready", nil, 0o600) // its SIGTERM handler is in place
		}
	}
	ignore := slices.Contains(args, "--ignore-term")
	deadline := time.After(time.Minute) // never outlive a test run by much
	for {
		select {
		case <-term:
			if !ignore {
				os.Exit(0)
			}
		case <-deadline:
			os.Exit(1)
		}
	}
}

// spawned starts a fake agent in a fresh directory and ends it at the end
// of the test.
func spawned(t *testing.T, extra ...string) (AgentDir, int) {
	t.Helper()
	d := AgentDir(t.TempDir())
	if _, err := d.Token(func() string { return "pdn_x" }); err != nil {
		t.Fatal(err)
	}
	pid, err := d.Spawn(extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	testenv.Eventually(t, 10*time.Second, "the agent to be ready", func() bool {
		_, err := os.Stat(filepath.Join(string(d), "agent.pid.ready"))
		return err == nil
	})
	return d, pid
}

func TestToken(t *testing.T) {
	t.Parallel()
	d := AgentDir(filepath.Join(t.TempDir(), "agent"))
	made := 0
	newToken := func() string { made++; return "pdn_" + strconv.Itoa(made) }
	first, err := d.Token(newToken)
	if err != nil || first != "pdn_1" {
		t.Fatalf("first token: %q %v", first, err)
	}
	again, err := d.Token(newToken)
	if err != nil || again != first || made != 1 {
		t.Fatalf("second call: %q %v after %d tokens made; want the first token kept", again, err, made)
	}
	for path, want := range map[string]os.FileMode{string(d): 0o700, filepath.Join(string(d), "token"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	os.WriteFile(filepath.Join(string(d), "token"), []byte("  \n"), 0o600)
	if tok, err := d.Token(newToken); err != nil || tok != "pdn_2" {
		t.Errorf("a blank token file: %q %v, want a new token", tok, err)
	}
	if err := d.SetServer("http://127.0.0.1:1234"); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(string(d), "server-url")); err != nil || string(data) != "http://127.0.0.1:1234\n" {
		t.Errorf("server-url: %q %v", data, err)
	}
}

// AlivePID finds a live agent of this directory and nothing else: not a
// missing or garbled pid file, not a dead pid, not another program.
func TestAlivePIDAndFlag(t *testing.T) {
	t.Parallel()
	d := AgentDir(t.TempDir())
	pidFile := filepath.Join(string(d), "agent.pid")
	for name, content := range map[string]string{
		"no pid file":      "",
		"garbage":          "not a pid\n",
		"a negative pid":   "-4\n",
		"this test binary": strconv.Itoa(os.Getpid()) + "\n", // alive, but not an agent
		"a dead process":   "2147483646\n",
	} {
		os.Remove(pidFile)
		if content != "" {
			os.WriteFile(pidFile, []byte(content), 0o600)
		}
		if pid := d.AlivePID(); pid != 0 {
			t.Errorf("%s: AlivePID = %d, want 0", name, pid)
		}
	}

	d, pid := spawned(t, "--hide", "/secret", "--run-user-prefix=pdk-")
	if got := d.AlivePID(); got != pid {
		t.Fatalf("AlivePID = %d, want the spawned agent %d", got, pid)
	}
	other := AgentDir(t.TempDir())
	data, _ := os.ReadFile(filepath.Join(string(d), "agent.pid"))
	os.WriteFile(filepath.Join(string(other), "agent.pid"), data, 0o600)
	if got := other.AlivePID(); got != 0 {
		t.Errorf("another directory's agent counts as this one's: %d", got)
	}
	for name, want := range map[string]string{
		"hide": "/secret", "run-user-prefix": "pdk-", "work-dir": filepath.Join(string(d), "work"),
		"token-file": filepath.Join(string(d), "token"), "no-such-flag": "",
	} {
		if got := d.Flag(name); got != want {
			t.Errorf("Flag(%q) = %q, want %q", name, got, want)
		}
	}
	if got := other.Flag("hide"); got != "" {
		t.Errorf("Flag of a directory without an agent: %q", got)
	}
}

// Stop ends an agent with SIGTERM, and with SIGKILL once the grace is up;
// it returns when the process is gone.
func TestStopAndKill(t *testing.T) {
	t.Parallel()
	d, pid := spawned(t)
	d.Stop(10 * time.Second)
	if alive(pid) || d.AlivePID() != 0 {
		t.Fatalf("agent %d alive after Stop", pid)
	}

	d, pid = spawned(t, "--ignore-term")
	start := time.Now()
	d.Stop(300 * time.Millisecond)
	if took := time.Since(start); alive(pid) || took < 300*time.Millisecond {
		t.Fatalf("an agent that ignores SIGTERM: alive %v after Stop, which took %s (grace 300ms)", alive(pid), took)
	}

	d, pid = spawned(t, "--ignore-term")
	d.Kill()
	if alive(pid) {
		t.Fatalf("agent %d alive after Kill", pid)
	}
	d.Stop(time.Second) // nothing to stop: returns at once
}

// The supervisor records the local node with its token's hash, starts the
// agent, adopts a live one after a server restart instead of starting a
// second, restarts one that dies, and at shutdown stops it only when idle.
func TestSupervisor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs testenv.Buffer // the supervisor's goroutine logs to it too
	var mu sync.Mutex
	var added []store.Node
	busy := false
	newSupervisor := func() *Supervisor {
		return &Supervisor{Dir: dir, Workspace: "default", Log: slog.New(slog.NewTextHandler(&logs, nil)),
			AddNode: func(_ context.Context, n store.Node) error {
				mu.Lock()
				defer mu.Unlock()
				added = append(added, n)
				return nil
			},
			TokenHash: func(s string) string { return "hash:" + s },
			NewToken:  func() string { return "pdn_local" },
			Busy:      func() bool { mu.Lock(); defer mu.Unlock(); return busy },
			ExtraArgs: []string{"--hide", "/data"}}
	}
	d := AgentDir(dir)
	t.Cleanup(func() {
		if pid := d.AlivePID(); pid != 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	ctx, cancel := context.WithCancel(t.Context())
	s := newSupervisor()
	if err := s.Start(ctx, "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	first := d.AlivePID()
	if first == 0 || d.Flag("hide") != "/data" {
		t.Fatalf("no agent running with the extra args after Start (pid %d, --hide %q)", first, d.Flag("hide"))
	}
	mu.Lock()
	n := added[0]
	mu.Unlock()
	if n.ID != NodeID || n.Compute != "local" || n.Workspace != "default" || n.TokenHash != "hash:pdn_local" {
		t.Errorf("the node recorded: %+v", n)
	}

	// A restarted server adopts the agent.
	cancel()
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	s = newSupervisor()
	if err := s.Start(ctx, "http://127.0.0.1:2"); err != nil {
		t.Fatal(err)
	}
	if pid := d.AlivePID(); pid != first || !strings.Contains(logs.String(), "adopted the running local agent") {
		t.Fatalf("after a restart the agent is %d, want the adopted %d\n%s", pid, first, logs.String())
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "server-url")); string(data) != "http://127.0.0.1:2\n" {
		t.Errorf("the new server's URL was not written: %q", data)
	}

	// One that dies is restarted.
	syscall.Kill(first, syscall.SIGKILL)
	var second int
	testenv.Eventually(t, 10*time.Second, "the agent to be restarted", func() bool {
		second = d.AlivePID()
		return second != 0 && second != first
	})

	// At shutdown a busy agent keeps running, an idle one is stopped.
	mu.Lock()
	busy = true
	mu.Unlock()
	s.Stop()
	if !alive(second) {
		t.Fatal("a busy agent was stopped at shutdown")
	}
	mu.Lock()
	busy = false
	mu.Unlock()
	cancel() // the supervisor must not restart what Stop ends
	s.Stop()
	if alive(second) {
		t.Fatal("an idle agent survived the shutdown")
	}
}
