// Package localnode runs the node agent that serves the built-in local
// target: a `paddock agent` process on the server's own host, started and
// supervised by the server.
//
// The agent is a separate process in its own session, so a crash or a
// restart of the server does not stop the runs it is running: the agent
// keeps them going and reports when the server is back. A restarted server
// adopts the agent it finds alive (its pid file) instead of starting a
// second one, and writes its new URL to a file the agent re-reads whenever
// it cannot connect. A clean server shutdown stops an idle agent and leaves
// a busy one running.
package localnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/paddock-ml/paddock/internal/clientconfig"
	"github.com/paddock-ml/paddock/internal/store"
)

// Files in the agent's directory.
const (
	tokenFile  = "token"
	serverFile = "server-url"
	pidFile    = "agent.pid"
	logFile    = "agent.log"
)

// NodeID is the id of the local target's node.
const NodeID = "local-0"

// Supervisor keeps the local agent running.
type Supervisor struct {
	Dir       string // the agent's directory (token, pid, log, work dir)
	Workspace string
	Log       *slog.Logger
	// AddNode records the node (with its token hash) before the agent starts.
	AddNode func(ctx context.Context, n store.Node) error
	// TokenHash hashes a token as the server stores it.
	TokenHash func(string) string
	// NewToken makes a node token.
	NewToken func() string
	// Busy reports whether the node has runs, to decide at shutdown.
	Busy func() bool
	// ExtraArgs are appended to the agent's command line (tests use them).
	ExtraArgs []string

	pid int
}

// Start makes sure the node exists and its agent runs, then supervises it
// until ctx ends.
func (s *Supervisor) Start(ctx context.Context, serverURL string) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	token, err := s.token()
	if err != nil {
		return err
	}
	if err := s.AddNode(ctx, store.Node{ID: NodeID, Workspace: s.Workspace, Compute: "local",
		TokenHash: s.TokenHash(token), CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}
	if err := clientconfig.WriteFileAtomic(filepath.Join(s.Dir, serverFile), []byte(serverURL+"\n"), 0o600); err != nil {
		return err
	}
	if pid := s.alivePID(); pid != 0 {
		s.pid = pid
		s.Log.Info("adopted the running local agent", "pid", pid)
	} else if err := s.spawn(); err != nil {
		return err
	}
	go s.watch(ctx)
	return nil
}

func (s *Supervisor) token() (string, error) {
	path := filepath.Join(s.Dir, tokenFile)
	data, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(data))) > 0 {
		return strings.TrimSpace(string(data)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tok := s.NewToken()
	return tok, clientconfig.WriteFileAtomic(path, []byte(tok+"\n"), 0o600)
}

// alivePID returns the pid in the pid file if that process is a paddock
// agent using this directory.
func (s *Supervisor) alivePID() int {
	data, err := os.ReadFile(filepath.Join(s.Dir, pidFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0
	}
	args := strings.Split(string(cmdline), "\x00")
	if len(args) < 2 || args[1] != "agent" || !strings.Contains(string(cmdline), s.Dir) {
		return 0
	}
	return pid
}

func (s *Supervisor) spawn() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := append([]string{"agent",
		"--server-file", filepath.Join(s.Dir, serverFile),
		"--token-file", filepath.Join(s.Dir, tokenFile),
		"--work-dir", filepath.Join(s.Dir, "work"),
		"--pid-file", filepath.Join(s.Dir, pidFile),
	}, s.ExtraArgs...)
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the server
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the local agent: %w", err)
	}
	s.pid = cmd.Process.Pid
	go cmd.Wait() // reap it if it exits while we run
	s.Log.Info("started the local agent", "pid", s.pid, "log", filepath.Join(s.Dir, logFile))
	return nil
}

// watch restarts the agent when it dies, with backoff.
func (s *Supervisor) watch(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
		if syscall.Kill(s.pid, 0) == nil && !zombie(s.pid) {
			backoff = 100 * time.Millisecond
			continue
		}
		s.Log.Warn("the local agent exited; restarting it", "pid", s.pid, "after", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
		if err := s.spawn(); err != nil {
			s.Log.Error("restarting the local agent", "err", err)
		}
	}
}

func zombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(data), ')')
	return i > 0 && i+2 < len(data) && data[i+2] == 'Z'
}

// Stop is called at a clean server shutdown: an idle agent is stopped, a
// busy one keeps its runs going until the server is back.
func (s *Supervisor) Stop() {
	if s.pid == 0 {
		return
	}
	if s.Busy() {
		s.Log.Info("the local agent has runs; it keeps them running until paddock is back", "pid", s.pid)
		return
	}
	syscall.Kill(s.pid, syscall.SIGTERM)
	for i := 0; i < 50 && syscall.Kill(s.pid, 0) == nil && !zombie(s.pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}
