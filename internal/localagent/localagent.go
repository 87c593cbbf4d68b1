// Package localagent runs the node agent that serves the built-in local
// target: a `paddock agent` process on the server's own host, started and
// supervised by the server.
//
// The agent is a separate process in its own session, so a crash or a
// restart of the server does not stop the runs it is running: the agent
// keeps them going and reports when the server is back. A restarted server
// adopts the agent it finds alive (its pid file) instead of starting a
// second one, and writes its new URL to a file the agent re-reads whenever
// it cannot connect. A clean server shutdown stops an idle agent and leaves
// a busy one running. The CA it pins for an https server is kept in a file
// beside the URL, re-read with it.
//
// AgentDir, the files of one agent process on this host (token, server
// URL, CA, pid file, log), serves the local provider's cluster nodes too.
package localagent

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/paddock-ml/paddock/internal/backoff"
	"github.com/paddock-ml/paddock/internal/store"
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
	// ExtraArgs are appended to the agent's command line (the paths runs
	// must not see; tests add more).
	ExtraArgs []string
	// CA is the PEM CA certificate the agent pins for an https server URL
	// (nil: the system's roots).
	CA []byte

	// pid is the agent's; the watch goroutine changes it when it restarts
	// the agent while Stop may read it.
	pid atomic.Int64
}

// Start makes sure the node exists and its agent runs, then supervises it
// until ctx ends.
func (s *Supervisor) Start(ctx context.Context, serverURL string) error {
	dir := AgentDir(s.Dir)
	token, err := dir.Token(s.NewToken)
	if err != nil {
		return err
	}
	if err := s.AddNode(ctx, store.Node{ID: NodeID, Workspace: s.Workspace, Compute: "local",
		TokenHash: s.TokenHash(token), CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}
	if err := dir.SetServer(serverURL); err != nil {
		return err
	}
	if err := dir.SetCA(s.CA); err != nil {
		return err
	}
	if pid := dir.AlivePID(); pid != 0 {
		s.pid.Store(int64(pid))
		s.Log.Info("adopted the running local agent", "pid", pid)
		if len(s.CA) > 0 && dir.Flag("ca-file") == "" {
			// Started by a paddock from before TLS: it cannot pin the CA.
			s.Log.Warn("the local agent was started without --ca-file and cannot reach an HTTPS server; stop it (its runs end) to have it restarted", "pid", pid)
		}
	} else if err := s.spawn(); err != nil {
		return err
	}
	go s.watch(ctx)
	return nil
}

func (s *Supervisor) spawn() error {
	pid, err := AgentDir(s.Dir).Spawn(s.ExtraArgs...)
	if err != nil {
		return err
	}
	s.pid.Store(int64(pid))
	s.Log.Info("started the local agent", "pid", pid, "log", AgentDir(s.Dir).Log())
	return nil
}

// watch restarts the agent when it dies, with backoff.
func (s *Supervisor) watch(ctx context.Context) {
	restart := backoff.New(100*time.Millisecond, 10*time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
		pid := int(s.pid.Load())
		if alive(pid) {
			restart.Reset()
			continue
		}
		s.Log.Warn("the local agent exited; restarting it", "pid", pid)
		if !restart.Wait(ctx) {
			return
		}
		if err := s.spawn(); err != nil {
			s.Log.Error("restarting the local agent", "err", err)
		}
	}
}

// Stop is called at a clean server shutdown: an idle agent is stopped, a
// busy one keeps its runs going until the server is back.
func (s *Supervisor) Stop() {
	pid := s.pid.Load()
	if pid == 0 {
		return
	}
	if s.Busy() {
		s.Log.Info("the local agent has runs; it keeps them running until paddock is back", "pid", pid)
		return
	}
	AgentDir(s.Dir).Stop(time.Second)
}
