// Package e2e drives the real paddock binary the way a user does: it builds
// it once (CGO_ENABLED=0, as shipped; with the race detector when the tests
// run with -race, and then a data race in the server, an agent or the CLI
// fails the test that ran it), starts `paddock up` on a random loopback
// port with its own data dir and config, and runs CLI commands.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/testenv"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "paddock-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "paddock")
	build := exec.Command("go", "build", "-o", binary, "../cmd/paddock")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if raceBinary {
		// The race detector needs cgo; scripts/test.sh keeps checking the
		// static build.
		build = exec.Command("go", "build", "-race", "-o", binary, "../cmd/paddock")
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
	}
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building paddock:", err)
		os.Exit(1)
	}
	code := m.Run()
	for _, f := range atExit {
		f()
	}
	removeTestUsers()
	os.RemoveAll(dir)
	os.Exit(code)
}

// atExit are cleanups of things shared by the tests of this process.
var atExit []func()

// env is one user's machine: a home, a config path and a data dir.
type env struct {
	t       testing.TB
	home    string
	config  string
	dataDir string
	extra   []string // more environment for the server and the CLI
}

func newEnv(t testing.TB) *env {
	home := t.TempDir()
	return &env{t: t, home: home, config: filepath.Join(home, "paddock-config"), dataDir: filepath.Join(home, "data")}
}

func (e *env) environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PADDOCK_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "HOME="+e.home, "PADDOCK_CONFIG="+e.config, "PADDOCK_RUN_USER_PREFIX="+runUserPrefix)
	if raceBinary {
		// A race-built program sleeps 1 s at exit by default; the tests run
		// hundreds of CLI commands.
		out = append(out, "GORACE=atexit_sleep_ms=0")
	}
	return append(out, e.extra...)
}

// runUserPrefix names the OS users this test process's agents make for
// runs (as root), so that they can be told apart and removed at the end.
var runUserPrefix = fmt.Sprintf("pdkt%d-", os.Getpid())

// server is a running `paddock up`.
type server struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
	err  error
}

func (s *server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

var urlInLog = regexp.MustCompile(`msg="paddock is serving".* url=(https?://\S+)`)

// up starts `paddock up` and waits until it serves; it is stopped at the
// end of the test.
// serverPprof makes the servers the tests start serve runtime profiles
// there (`paddock up --pprof-listen`), to profile a benchmark:
//
//	go test -run '^$' -bench QueuedThroughput ./e2e/ -server-pprof-listen 127.0.0.1:6061
//
// Only one server can listen on it at a time.
var serverPprof = flag.String("server-pprof-listen", "", "the servers started serve runtime profiles on this address (paddock up --pprof-listen; one server at a time)")

func (e *env) up(extra ...string) *server {
	e.t.Helper()
	args := []string{"up", "--data-dir", e.dataDir, "--listen", "127.0.0.1:0"}
	if *serverPprof != "" {
		args = append(args, "--pprof-listen", *serverPprof)
	}
	args = append(args, extra...)
	s := &server{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	s.cmd.Env = e.environ()
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			if m := urlInLog.FindStringSubmatch(line); m != nil {
				urlCh <- m[1]
			}
		}
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	e.t.Cleanup(func() {
		s.kill()
		e.stopAgent()
		e.noDataRaces("the server", s.Logs())
		logs, _ := filepath.Glob(filepath.Join(e.dataDir, "nodes", "*", "agent.log"))
		for _, f := range append(logs, filepath.Join(e.dataDir, "local-agent", "agent.log")) {
			data, _ := os.ReadFile(f)
			e.noDataRaces("the agent logging to "+f, string(data))
		}
	})
	select {
	case s.url = <-urlCh:
	case <-s.done:
		e.t.Fatalf("paddock up exited early: %v\n%s", s.err, s.Logs())
	case <-time.After(20 * time.Second):
		e.t.Fatalf("paddock up did not start serving in 20s\n%s", s.Logs())
	}
	return s
}

// stop sends SIGTERM and returns the exit error after the server ends.
func (s *server) stop(t *testing.T) error {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return s.err
	case <-time.After(15 * time.Second):
		t.Fatalf("server did not stop within 15s of SIGTERM\n%s", s.Logs())
		return nil
	}
}

func (s *server) kill() {
	select {
	case <-s.done:
	default:
		s.cmd.Process.Kill()
		<-s.done
	}
}

// result is what one CLI invocation did.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the paddock CLI with args.
func (e *env) run(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = e.environ()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running paddock %v: %v", args, err)
	}
	e.noDataRaces(fmt.Sprintf("paddock %v", args), errb.String())
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// noDataRaces fails the test if a race-built paddock reported a data race
// in what it wrote.
func (e *env) noDataRaces(who, output string) {
	e.t.Helper()
	if i := strings.Index(output, "WARNING: DATA RACE"); i >= 0 {
		e.t.Errorf("%s reported a data race:\n%s", who, output[i:min(len(output), i+8000)])
	}
}

// ok runs the CLI and fails the test unless it exits 0.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("paddock %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// httpGet sends a GET with an optional bearer token.
func httpGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// agentPID is the pid of the local agent the server started, or 0.
func (e *env) agentPID() int {
	data, err := os.ReadFile(filepath.Join(e.dataDir, "local-agent", "agent.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// stopAgent ends the local agent and every cluster node's agent, which
// outlive the server on purpose.
func (e *env) stopAgent() {
	files, _ := filepath.Glob(filepath.Join(e.dataDir, "nodes", "*", "agent.pid"))
	files = append(files, filepath.Join(e.dataDir, "local-agent", "agent.pid"))
	var pids []int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(data))); pid > 0 {
			pids = append(pids, pid)
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	for _, pid := range pids {
		for i := 0; i < 200 && alive(pid); i++ {
			time.Sleep(25 * time.Millisecond)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// eventually polls cond until it holds or the deadline passes.
var eventually = testenv.Eventually

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
