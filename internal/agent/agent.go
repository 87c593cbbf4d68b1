// Package agent is the node agent: the process that runs on every node,
// registers with the server, heartbeats, pulls assigned work, runs it,
// streams its logs, uploads its outputs and reports how it ended.
//
// It connects out to the server (so it works behind NAT, in a Slurm
// allocation or in a pod) and holds a long poll open, so an assignment
// reaches it the moment it is made. Every report names the attempt it is
// about; when the server answers that an attempt is no longer current, the
// agent stops it. When the server is away the agent keeps its runs going,
// buffers their logs and results, and delivers them once it is back.
//
// A run gets the environment it asks for (an interpreter, a venv built
// once per requirements, or a container image) and, where the host allows,
// is kept from the agent's files, the server's and other users' runs: as an
// OS user of its own when the agent is root, else in user and mount
// namespaces (isolation.go says how). A compute instance's agent also
// serves SSH to the instance's owner.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/agent/proc"
	"github.com/paddock-ml/paddock/internal/backoff"
	"github.com/paddock-ml/paddock/internal/version"
)

// Config configures an agent.
type Config struct {
	Server     string // server URL, or the URLs of a workspace's replicas (comma-separated)
	ServerFile string // or a file holding it (or them), re-read whenever the server cannot be reached
	// CAFile holds the CA certificate(s), PEM, the agent trusts for an
	// https server, and no others; re-read with ServerFile. Unset or
	// missing: the system's roots. Runs get a copy (PADDOCK_CA_FILE).
	CAFile    string
	Token     string // node token
	TokenFile string // or a file holding it
	WorkDir   string // runs, caches and environments live here
	PIDFile   string // written at start, removed at exit
	// KillGrace is how long a run has between SIGTERM and SIGKILL.
	KillGrace time.Duration
	// OrphanTimeout ends an idle agent that cannot reach its server.
	OrphanTimeout time.Duration
	// Cores and MemoryGB override what is detected (0 = detect).
	Cores, MemoryGB float64
	// OneRun makes the agent exit once its first attempt has ended and been
	// reported (a Slurm pilot job that exists for one run).
	OneRun bool
	// CheckpointInterval is how often ./outputs is uploaded while a run
	// runs, when it changed (0: only at the end).
	CheckpointInterval time.Duration
	// Home, when set, is the HOME of runs and SSH sessions (a compute
	// instance's home directory, kept while it is stopped).
	Home string
	// SSHListen, when set, serves SSH there for the keys in
	// SSHAuthorizedKeysFile, with the host key in SSHHostKeyFile.
	SSHListen, SSHHostKeyFile, SSHAuthorizedKeysFile string
	// Address is the node's address as other nodes of a multi-node run
	// reach it (default: its hostname).
	Address string
	// Owner is the Paddock user a compute instance belongs to: its home
	// and SSH sessions are that user's; SSH logins must use that name.
	Owner string
	// Hide are more paths runs must not see (the server's data dir, the
	// directory holding the agent's files); the work dir and the token
	// file are always hidden.
	Hide []string
	// RunUserPrefix starts the names of the OS users runs execute as when
	// the agent is root (default DefaultRunUserPrefix).
	RunUserPrefix string
	// NoIsolation runs every run as the agent's own user, seeing what the
	// agent sees (trusted single-user setups only).
	NoIsolation bool
	// Image is the container image the agent itself runs in (a Kubernetes
	// pod's): a run asking for that image runs here directly, without a
	// container engine.
	Image string
	Log   *slog.Logger
}

// Agent is a running node agent.
type Agent struct {
	cfg Config
	log *slog.Logger
	// client and uploads talk to the server; uploads have no overall
	// timeout (their context bounds them). Every attempt's goroutines use
	// them while refreshServer points them at a new URL, so a change
	// replaces a client whole instead of writing to one in use.
	client, uploads atomic.Pointer[api.AgentClient]
	node            api.AgentNode
	// trust is the CA the clients pin, and their transport; loadTrust
	// changes it under trustMu.
	trust   atomic.Pointer[trust]
	trustMu sync.Mutex
	// learned are the replicas' URLs the server sent with its last work
	// (api.AgentWork.Servers), tried after those configured.
	learned atomic.Pointer[[]string]

	iso *isolation

	mu       sync.Mutex
	attempts map[string]*attempt // by run id
	ssh      *sshServer
	ids      *identityServer    // runs' identity endpoint, once an attempt needs it
	stop     context.CancelFunc // ends the agent (OneRun)
	wg       sync.WaitGroup
	envLocks sync.Map // venv key → *sync.Mutex

	launcherOnce sync.Once // see launcher
	launcherPath string
	launcherErr  error
}

// Run runs an agent until ctx ends; then it stops its runs and returns.
func Run(ctx context.Context, cfg Config) error {
	if cfg.KillGrace == 0 {
		cfg.KillGrace = 10 * time.Second
	}
	if cfg.OrphanTimeout == 0 {
		cfg.OrphanTimeout = 10 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	notDumpable()
	if err := privateDirs(cfg.WorkDir, "runs", "snapshots", "envs", "bin", "homes", "tmp"); err != nil {
		return err
	}
	token := cfg.Token
	if cfg.TokenFile != "" {
		data, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return fmt.Errorf("reading the node token: %w", err)
		}
		token = strings.TrimSpace(string(data))
		if err := os.Chmod(cfg.TokenFile, 0o600); err != nil {
			return fmt.Errorf("making the node token private: %w", err)
		}
	}
	if token == "" {
		return errors.New("a node token is required (--token-file or PADDOCK_NODE_TOKEN)")
	}
	if cfg.PIDFile != "" {
		if err := os.WriteFile(cfg.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
			return err
		}
		defer os.Remove(cfg.PIDFile)
	}
	a := &Agent{cfg: cfg, log: cfg.Log, attempts: map[string]*attempt{}, iso: newIsolation(cfg)}
	if a.iso.mode == isolateNone {
		cfg.Log.Warn("runs are not isolated", "isolation", describeIsolation(a.iso))
	} else {
		cfg.Log.Info("runs are isolated", "isolation", describeIsolation(a.iso))
	}
	a.cleanLeftovers()
	if cfg.Home != "" {
		if err := a.prepareHome(); err != nil {
			return fmt.Errorf("preparing the home directory %s: %w", cfg.Home, err)
		}
	}
	if cfg.SSHListen != "" {
		s, err := startSSH(a)
		if err != nil {
			return err
		}
		defer s.Close()
		a.ssh = s
		cfg.Log.Info("serving SSH", "addr", s.Addr())
	}
	ctx, a.stop = context.WithCancel(ctx)
	defer a.stop()
	if err := a.connect(token); err != nil {
		return err
	}
	err := a.loop(ctx)
	a.stopAll("the node agent is stopping")
	a.wg.Wait()
	a.mu.Lock()
	if a.ids != nil {
		a.ids.close()
	}
	a.mu.Unlock()
	return err
}

// connect makes the agent's clients of the server, with the node token,
// pinning the CA of Config.CAFile.
func (a *Agent) connect(token string) error {
	tr, err := a.loadTrust()
	if err != nil {
		return err
	}
	client := api.NewAgentClient(a.serverURL(), token)
	client.HTTP = &http.Client{Timeout: 90 * time.Second, Transport: tr.transport}
	a.client.Store(client)
	uploads := api.NewAgentClient(a.serverURL(), token)
	uploads.HTTP = &http.Client{Transport: tr.transport}
	a.uploads.Store(uploads)
	return nil
}

// privateDirs makes dir and its subdirectories, readable by this agent's
// user only; existing ones are made so.
func privateDirs(dir string, subs ...string) error {
	for _, d := range append([]string{dir}, subs...) {
		if d != dir {
			d = filepath.Join(dir, d)
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// prepareHome gives a compute instance's home to its owner.
func (a *Agent) prepareHome() error {
	if err := os.MkdirAll(a.cfg.Home, 0o700); err != nil {
		return err
	}
	if a.iso.mode != isolateRoot {
		return os.Chmod(a.cfg.Home, 0o700)
	}
	u, err := a.iso.user(a.cfg.Owner)
	if err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(a.cfg.Home, &st); err != nil {
		return err
	}
	if st.Uid != u.id.UID { // first start, or made by an earlier version as root
		if err := chownTree(a.cfg.Home, u.id); err != nil {
			return err
		}
	}
	return os.Chmod(a.cfg.Home, 0o700)
}

// cleanLeftovers kills what attempts of an earlier agent on this work dir
// left running (the server has failed those attempts with NodeLost) and
// removes their directories. An attempt's directory and cgroup share its
// name.
func (a *Agent) cleanLeftovers() {
	dir := filepath.Join(a.cfg.WorkDir, "runs")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if err := proc.KillLeftover(e.Name()); err != nil {
			a.log.Warn("could not stop processes left by an earlier agent", "attempt", e.Name(), "err", err)
			continue
		}
		os.RemoveAll(filepath.Join(dir, e.Name()))
		a.log.Info("cleaned up an attempt left by an earlier agent", "attempt", e.Name())
	}
	tmps, _ := os.ReadDir(filepath.Join(a.cfg.WorkDir, "tmp"))
	for _, e := range tmps {
		os.RemoveAll(filepath.Join(a.cfg.WorkDir, "tmp", e.Name()))
	}
}

// serverURL is where the agent's calls go: the server file's URLs (else
// --server's), then those of the other replicas the server told it of,
// comma-separated (the client tries them in turn).
func (a *Agent) serverURL() string {
	list := api.Servers(a.cfg.Server)
	if a.cfg.ServerFile != "" {
		if data, err := os.ReadFile(a.cfg.ServerFile); err == nil && len(strings.TrimSpace(string(data))) > 0 {
			list = api.Servers(string(data))
		}
	}
	if learned := a.learned.Load(); learned != nil {
		for _, u := range *learned {
			if !slices.Contains(list, u) {
				list = append(list, u)
			}
		}
	}
	return strings.Join(list, ",")
}

// learn keeps the replicas' URLs a server sent, and points the clients
// at them too when they are new.
func (a *Agent) learn(servers []string) {
	list := api.Servers(strings.Join(servers, ","))
	if old := a.learned.Load(); old != nil && slices.Equal(*old, list) {
		return
	}
	a.learned.Store(&list)
	if t := a.trust.Load(); t != nil && a.refreshClients(a.serverURL(), t) {
		a.log.Info("the workspace's replicas changed", "servers", a.serverURL())
	}
}

// refreshServer re-reads the server URL and the CA after a failed call. A
// CA file that cannot be used is logged and the CA in use kept.
func (a *Agent) refreshServer() {
	u := a.serverURL()
	t, err := a.loadTrust()
	if err != nil {
		a.log.Warn("keeping the CA in use", "err", err)
		if t = a.trust.Load(); t == nil {
			return
		}
	}
	if a.refreshClients(u, t) {
		a.log.Info("server URL or CA changed", "url", u)
	}
}

func (a *Agent) active() []api.AttemptRef {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]api.AttemptRef, 0, len(a.attempts))
	for _, at := range a.attempts {
		out = append(out, at.ref)
	}
	return out
}

// loop says hello, then long-polls for work until ctx ends.
func (a *Agent) loop(ctx context.Context) error {
	hello := false
	retry := serverBackoff()
	lastContact := time.Now()
	for ctx.Err() == nil {
		var err error
		if !hello {
			err = a.hello(ctx)
			hello = err == nil
		} else {
			poll := api.AgentPoll{Active: a.active(), WaitMS: 25000}
			if a.ssh != nil {
				poll.SSHSessions = a.ssh.Sessions()
				poll.WaitMS = 5000 // report session activity often enough for idle shutdown
			}
			var work api.AgentWork
			work, err = a.client.Load().Poll(ctx, poll)
			if err == nil {
				if len(work.Servers) > 0 {
					a.learn(work.Servers)
				}
				a.handle(ctx, work)
			} else if errors.Is(err, api.ErrConflict) || errors.Is(err, api.ErrNotFound) {
				hello = false // the server forgot us (restart, lost node): introduce ourselves again
			}
		}
		if err == nil {
			retry.Reset()
			lastContact = time.Now()
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, api.ErrUnauthenticated) {
			return fmt.Errorf("the server refused this node's token: %w", err)
		}
		if time.Since(lastContact) > a.cfg.OrphanTimeout && len(a.active()) == 0 {
			return fmt.Errorf("no contact with the server for %s and nothing to report; exiting", a.cfg.OrphanTimeout)
		}
		a.log.Debug("server call failed; retrying", "err", err)
		a.retryAfter(ctx, retry)
	}
	return nil
}

// serverBackoff spaces out retried calls to the server: 50 ms doubling to 2 s.
func serverBackoff() *backoff.Backoff { return backoff.New(50*time.Millisecond, 2*time.Second) }

// retryAfter waits out the backoff after a failed call to the server and
// re-reads the server URL, which may have changed. It reports false, at
// once, when ctx ends first.
func (a *Agent) retryAfter(ctx context.Context, retry *backoff.Backoff) bool {
	if !retry.Wait(ctx) {
		return false
	}
	a.refreshServer()
	return true
}

func (a *Agent) hello(ctx context.Context) error {
	h := detect(a.cfg)
	h.Active = a.active()
	if a.ssh != nil {
		h.SSH = a.ssh.Addr()
	}
	node, err := a.client.Load().Hello(ctx, h)
	if err != nil {
		return err
	}
	if a.node.NodeID == "" {
		a.log.Info("registered", "node", node.NodeID, "compute", node.Compute, "server", a.client.Load().Server,
			"cores", h.Cores, "memory_gb", h.MemoryGB, "gpus", len(h.GPUs), "version", version.Version)
	}
	a.node = node
	return nil
}

// handle starts new assignments and stops what the server cancels or no
// longer recognises.
func (a *Agent) handle(ctx context.Context, w api.AgentWork) {
	for _, s := range w.Stale {
		if at := a.get(s.RunID); at != nil && at.ref.Attempt == s.Attempt && !at.ended.Load() {
			a.log.Warn("the server says this attempt is no longer current; stopping it", "run", s.RunID, "attempt", s.Attempt)
			at.stop("stale", true)
		}
	}
	for _, c := range w.Cancel {
		if at := a.get(c.RunID); at != nil && at.ref.Attempt == c.Attempt {
			at.stop(c.Reason, false)
		}
	}
	for _, as := range w.Assignments {
		a.mu.Lock()
		if cur, ok := a.attempts[as.RunID]; ok && cur.ref.Attempt >= as.Attempt {
			a.mu.Unlock()
			continue // a redelivery of what we already run
		}
		at := newAttempt(a, as)
		a.attempts[as.RunID] = at
		a.mu.Unlock()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			at.run(ctx)
			a.mu.Lock()
			if a.attempts[as.RunID] == at {
				delete(a.attempts, as.RunID)
			}
			a.mu.Unlock()
			if a.cfg.OneRun {
				a.log.Info("the one run of this agent ended; exiting", "run", as.RunID)
				a.stop()
			}
		}()
	}
}

func (a *Agent) get(runID string) *attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.attempts[runID]
}

func (a *Agent) stopAll(why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range a.attempts {
		at.stop(why, false)
	}
}

// report sends an attempt's status, retrying until the server has it (or
// says the attempt is stale, or ctx ends). It reports whether the attempt
// is still current.
func (a *Agent) report(ctx context.Context, ref api.AttemptRef, rep api.AttemptReport) bool {
	retry := serverBackoff()
	for {
		err := a.client.Load().Report(ctx, ref, rep)
		switch {
		case err == nil:
			return true
		case errors.Is(err, api.ErrConflict), errors.Is(err, api.ErrNotFound):
			return false
		case ctx.Err() != nil:
			return false
		}
		a.log.Debug("reporting status failed; retrying", "run", ref.RunID, "status", rep.Status, "err", err)
		if !a.retryAfter(ctx, retry) {
			return false
		}
	}
}
