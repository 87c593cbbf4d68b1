package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/artifact"
	"github.com/paddock-ml/paddock/internal/autoscaler"
	"github.com/paddock-ml/paddock/internal/clientconfig"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/dispatch"
	"github.com/paddock-ml/paddock/internal/localnode"
	"github.com/paddock-ml/paddock/internal/provider"
	localprovider "github.com/paddock-ml/paddock/internal/provider/local"
	"github.com/paddock-ml/paddock/internal/provider/sim"
	"github.com/paddock-ml/paddock/internal/provider/sshprov"
	"github.com/paddock-ml/paddock/internal/provision"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/sshx"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/version"
	"github.com/paddock-ml/paddock/internal/workspace"
)

// Options configure a workspace server.
type Options struct {
	DataDir string // holds the database, the secret key and the admin token
	Listen  string // host:port; port 0 picks a free one
	Log     *slog.Logger
	// Ready, when set, is called once the server accepts requests.
	Ready func(url string)
	// NodeLostAfter is how long a node may be silent before its runs fail
	// with NodeLost (default 60 s).
	NodeLostAfter time.Duration
	// NoLocalAgent skips starting the local target's agent.
	NoLocalAgent bool
	// PreemptEvery, when set, makes the local provider preempt a random
	// low-priority node on average this often (demos, soak tests).
	PreemptEvery time.Duration
	// Sim enables the sim node provider (load and scale tests only).
	Sim bool
	// SimPollWait and SimHeartbeat tune the simulated agents (see sim.Options).
	SimPollWait, SimHeartbeat time.Duration
	// PprofListen, when set, serves Go's runtime profiles (net/http/pprof,
	// unauthenticated) on that address: for profiling, keep it on loopback.
	PprofListen string
	// MaxRunLogBytes caps what a run's log may store; later lines are
	// dropped with a marker (0: no cap).
	MaxRunLogBytes int64
}

// Files inside the data dir.
const (
	dbFile         = "paddock.db"
	keyFile        = "secret.key"
	adminTokenFile = "admin.token"
	lockFile       = "paddock.lock"
	adminUser      = "admin"
)

// Run starts the workspace server and serves until ctx ends, then shuts
// down cleanly: in-flight requests finish, loops stop, the store closes.
func Run(ctx context.Context, o Options) error {
	start := time.Now()
	log := o.Log
	notDumpable()
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir %s: %w", dataDir, err)
	}
	if err := privateDataDir(dataDir, log); err != nil {
		return err
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer lock.release()

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return api.Conflict("cannot listen on %s: the address is in use by another program; choose another with --listen", o.Listen)
		}
		return fmt.Errorf("cannot listen on %s: %w", o.Listen, err)
	}
	defer ln.Close()
	url := "http://" + ln.Addr().String()
	if o.PprofListen != "" {
		stop, err := servePprof(o.PprofListen, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	st, err := sqlite.Open(ctx, filepath.Join(dataDir, dbFile))
	if err != nil {
		return err
	}
	defer st.Close()
	box, err := secret.LoadOrCreateKey(filepath.Join(dataDir, keyFile))
	if err != nil {
		return err
	}
	sizes, err := compute.NewCatalog(filepath.Join(dataDir, compute.SizesFile))
	if err != nil {
		return fmt.Errorf("the size file is invalid: %w", err)
	}
	token, err := ensureAdmin(ctx, st, filepath.Join(dataDir, adminTokenFile))
	if err != nil {
		return err
	}

	now := func() time.Time { return time.Now().UTC() }
	loops, stopLoops := context.WithCancel(context.Background())
	defer stopLoops()
	sizes.Log = log
	go sizes.Watch(loops, 2*time.Second)

	// The node providers this server runs, and the autoscaler that uses them.
	providers := &provider.Registry{}
	// Runs never see the server's files: its data dir, and the CLI config
	// holding the admin token wherever it is.
	hide := []string{dataDir}
	if p, err := clientconfig.Path(); err == nil {
		hide = append(hide, p)
	}
	localProvider, err := localprovider.New(loops, filepath.Join(dataDir, "nodes"), url, hide, log)
	if err != nil {
		return err
	}
	providers.Add(localProvider)
	if o.Sim {
		providers.Add(sim.New(loops, sim.Options{PollWait: o.SimPollWait, Heartbeat: o.SimHeartbeat}, log))
	}
	var ws *workspace.Service
	lookupHost := func(ctx context.Context, nodeID string) (sshx.Target, error) {
		nodes, err := st.Nodes(ctx)
		if err != nil {
			return sshx.Target{}, err
		}
		for _, n := range nodes {
			if n.ID != nodeID {
				continue
			}
			target := n.Compute
			if n.Host != "" { // a node of an ssh-provider cluster, on a pool host
				target = n.Host
			}
			rec, err := st.GetCompute(ctx, n.Workspace, target)
			if err != nil {
				return sshx.Target{}, err
			}
			secrets, err := ws.OpenSecrets(rec)
			if err != nil {
				return sshx.Target{}, err
			}
			t, _, err := compute.SSHTarget(rec.Properties, secrets)
			return t, err
		}
		return sshx.Target{}, fmt.Errorf("node %s is not known", nodeID)
	}
	providers.Add(sshprov.New("ssh", log, lookupHost))
	providers.Add(sshprov.New("slurm", log, lookupHost))
	if o.PreemptEvery > 0 {
		go localProvider.PreemptRandomly(loops, o.PreemptEvery)
	}
	var scaler *autoscaler.Controller
	onChange := func(key string) { scaler.Enqueue(key) }

	ctrl := provision.New(st, compute.ProvisionEnv{
		// Clusters can use the local, ssh (an SSH pool) and slurm (pilot
		// jobs) providers; kubernetes is not built yet, so such a cluster
		// fails to provision with a clear error.
		ProviderAvailable: func(p string) bool {
			return p == "local" || p == "ssh" || p == "slurm" || p == "sim" && o.Sim
		},
		ReleaseNodes: func(ctx context.Context, ws, name, p string) error { return scaler.ReleaseNodes(ctx, ws, name, p) },
	}, log, now)
	arts, err := artifact.New(filepath.Join(dataDir, "artifacts"))
	if err != nil {
		return err
	}
	if n, err := arts.MakePrivate(); err != nil {
		return fmt.Errorf("making the artifacts private: %w", err)
	} else if n > 0 {
		log.Warn("tightened the permissions of artifacts an earlier version left readable by others", "dir", filepath.Join(dataDir, "artifacts"), "entries", n)
	}
	disp := dispatch.New(st, box, log, now, dispatch.Options{NodeLostAfter: o.NodeLostAfter, APIURL: url, OnChange: onChange,
		OnRunEnded: func(wsName, name string) { deleteIfEphemeral(ws, st, log, wsName, name) }})
	if err := disp.Load(ctx); err != nil {
		return fmt.Errorf("loading runs: %w", err)
	}
	nodeToken := func() string { return nodeTokenPrefix + NewToken()[4:] }
	scaler = &autoscaler.Controller{Store: st, Dispatch: disp, Providers: providers, Sizes: sizes, Log: log, Now: now,
		ServerURL: url, NewToken: nodeToken, TokenHash: TokenHash, HomesDir: filepath.Join(dataDir, "homes"),
		Secrets: func(rec store.Compute) (map[string]secret.Value, error) { return ws.OpenSecrets(rec) }}
	scaler.Init()
	ctrl.OnTransition = scaler.Enqueue
	ws = &workspace.Service{Store: st, Box: box, Sizes: sizes, Now: now,
		Changed:    func(key string) { ctrl.Enqueue(key); scaler.Enqueue(key) },
		ActiveRuns: disp.ActiveRuns, CancelRun: disp.CancelRun, Nodes: disp.Nodes}
	if err := ws.EnsureBuiltins(ctx, workspace.DefaultName, adminUser); err != nil {
		return err
	}
	cfgPath, err := clientconfig.Save(clientconfig.Config{Server: url, Token: token, Workspace: workspace.DefaultName})
	if err != nil {
		return fmt.Errorf("writing the CLI config: %w", err)
	}
	if err := lock.describe(url); err != nil {
		return err
	}

	loopsDone := make(chan error, 2)
	go func() { loopsDone <- ctrl.Run(loops) }()
	dispDone := make(chan struct{})
	go func() { disp.Run(loops); close(dispDone) }()
	go func() {
		if err := scaler.Run(loops); err != nil && loops.Err() == nil {
			log.Error("the autoscaler stopped", "err", err)
		}
	}()

	// Requests (long polls and log follows included) end when reqCtx does.
	reqCtx, endRequests := context.WithCancel(context.Background())
	defer endRequests()
	srv := newHTTPServer(NewAPI(Deps{WS: ws, Store: st, Dispatch: disp, Artifacts: arts, Scaler: scaler, Log: log,
		MaxRunLogBytes: o.MaxRunLogBytes}), reqCtx, log, defaultTimeouts)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	local := &localnode.Supervisor{
		Dir: filepath.Join(dataDir, "local-agent"), Workspace: workspace.DefaultName, Log: log,
		AddNode: disp.AddNode, TokenHash: TokenHash, NewToken: nodeToken,
		Busy:      func() bool { return disp.NodeBusy(context.Background(), localnode.NodeID) },
		ExtraArgs: hideArgs(hide),
	}
	if !o.NoLocalAgent {
		if err := local.Start(loops, url); err != nil {
			return fmt.Errorf("starting the local agent: %w", err)
		}
	}
	// Clusters made for one run whose run ended while the server was down.
	go sweepEphemeral(loops, ws, st, log)
	log.Info("paddock is serving", "version", version.Version, "url", url, "workspace", workspace.DefaultName,
		"data_dir", dataDir, "cli_config", cfgPath, "startup", time.Since(start).Round(time.Millisecond))
	if o.Ready != nil {
		o.Ready(url)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		stopLoops()
		<-loopsDone
		<-dispDone
		return err
	case err := <-loopsDone:
		loopsDone <- err
		log.Error("a control loop stopped", "err", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	endRequests()
	err = srv.Shutdown(shutdownCtx)
	local.Stop()
	stopLoops()
	<-dispDone
	if lerr := <-loopsDone; lerr != nil && err == nil {
		err = lerr
	}
	log.Info("stopped")
	return err
}

// hideArgs are the agent flags that hide paths from runs.
func hideArgs(paths []string) []string {
	var args []string
	for _, p := range paths {
		args = append(args, "--hide", p)
	}
	return args
}

// privateDataDir makes the data dir readable by its owner only (0700) and
// the database 0600, fixing what earlier versions made, and saying so. The
// database file is made before SQLite opens it, because SQLite gives its
// -wal and -shm files the mode of the database.
func privateDataDir(dir string, log *slog.Logger) error {
	tighten := func(path string, perm os.FileMode) error {
		fi, err := os.Lstat(path)
		if errors.Is(err, os.ErrNotExist) || err == nil && (fi.Mode()&os.ModeSymlink != 0 || fi.Mode().Perm()&^perm == 0) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := os.Chmod(path, fi.Mode().Perm()&perm); err != nil {
			return fmt.Errorf("making %s private: %w", path, err)
		}
		log.Warn("tightened the permissions of a file an earlier version left readable by others", "path", path,
			"was", fmt.Sprintf("%04o", fi.Mode().Perm()), "now", fmt.Sprintf("%04o", fi.Mode().Perm()&perm))
		return nil
	}
	if err := tighten(dir, 0o700); err != nil {
		return err
	}
	db := filepath.Join(dir, dbFile)
	if f, err := os.OpenFile(db, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	} else {
		return fmt.Errorf("creating %s: %w", db, err)
	}
	for _, name := range []string{dbFile, dbFile + "-wal", dbFile + "-shm", dbFile + "-journal", adminTokenFile, lockFile} {
		if err := tighten(filepath.Join(dir, name), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// timeouts bound how long a client may hold a connection without doing
// its part.
type timeouts struct {
	header time.Duration // to send a request's headers
	body   time.Duration // to send a body, at most (the API sets shorter ones per route)
	idle   time.Duration // between requests on a kept-alive connection
}

var defaultTimeouts = timeouts{header: 10 * time.Second, body: uploadBodyTimeout, idle: 2 * time.Minute}

// newHTTPServer is the API's HTTP server. No write timeout: long polls and
// log follows hold responses open, and end with the request's context.
func newHTTPServer(h http.Handler, base context.Context, log *slog.Logger, t timeouts) *http.Server {
	return &http.Server{
		BaseContext:       func(net.Listener) context.Context { return base },
		Handler:           h,
		ReadHeaderTimeout: t.header,
		ReadTimeout:       t.body,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// ensureAdmin makes sure the admin user exists with the token kept in the
// data dir, creating a token on first start.
func ensureAdmin(ctx context.Context, st store.Store, path string) (string, error) {
	data, err := os.ReadFile(path)
	token := strings.TrimSpace(string(data))
	if errors.Is(err, os.ErrNotExist) || token == "" {
		token = NewToken()
		if err := clientconfig.WriteFileAtomic(path, []byte(token+"\n"), 0o600); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	err = st.PutUser(ctx, store.User{Name: adminUser, Admin: true, TokenHash: TokenHash(token), CreatedAt: time.Now().UTC()})
	return token, err
}

// NewToken returns a new random bearer token.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "pdk_" + base64.RawURLEncoding.EncodeToString(b)
}

// dirLock is an exclusive flock on the data dir's lock file, held while the
// server runs; the kernel drops it if the process dies.
type dirLock struct{ f *os.File }

func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if who == "" {
				who = "another process"
			}
			return nil, api.Conflict("data dir %s is in use by another paddock server (%s); stop it first or choose another --data-dir", dir, who)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) describe(url string) error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err := l.f.WriteAt([]byte(fmt.Sprintf("pid %d, serving %s\n", os.Getpid(), url)), 0)
	return err
}

func (l *dirLock) release() {
	l.f.Truncate(0)
	l.f.Close()
}

// servePprof serves the runtime profiles on their own listener, so that
// they are never reachable through the API's address.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s (--pprof-listen): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("serving runtime profiles", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { srv.Close() }, nil
}
