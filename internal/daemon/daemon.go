// Package daemon is the workspace server's process: it opens the data
// dir and the store, builds the node providers, the dispatcher, the
// controllers and the services, connects them through one notifier and
// one clock, serves the HTTP API and starts the local target's agent. It
// is the composition root; `paddock up` calls Run.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/artifact"
	"github.com/paddock-ml/paddock/internal/audit"
	"github.com/paddock-ml/paddock/internal/clientconfig"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/dispatch"
	"github.com/paddock-ml/paddock/internal/identities"
	"github.com/paddock-ml/paddock/internal/localagent"
	"github.com/paddock-ml/paddock/internal/nodes"
	"github.com/paddock-ml/paddock/internal/notify"
	"github.com/paddock-ml/paddock/internal/policy"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/provisioning"
	"github.com/paddock-ml/paddock/internal/runs"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/server"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/postgres"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/studio"
	"github.com/paddock-ml/paddock/internal/targets"
	tokens "github.com/paddock-ml/paddock/internal/token"
	"github.com/paddock-ml/paddock/internal/users"
	"github.com/paddock-ml/paddock/internal/version"

	// The node providers register themselves.
	_ "github.com/paddock-ml/paddock/internal/provider/databricks"
	_ "github.com/paddock-ml/paddock/internal/provider/kubernetes"
	_ "github.com/paddock-ml/paddock/internal/provider/local"
	_ "github.com/paddock-ml/paddock/internal/provider/sim"
	_ "github.com/paddock-ml/paddock/internal/provider/sshhost"
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
	// SimPollWait and SimHeartbeat tune the simulated agents.
	SimPollWait, SimHeartbeat time.Duration
	// PprofListen, when set, serves Go's runtime profiles (net/http/pprof,
	// unauthenticated) on that address: for profiling, keep it on loopback.
	PprofListen string
	// MaxRunLogBytes caps what a run's log may store; later lines are
	// dropped with a marker (0: no cap).
	MaxRunLogBytes int64
	// AuditRetention is how long audit entries are kept (0: for ever).
	AuditRetention time.Duration
	// TLS serves HTTPS with a CA and server certificate made in the data
	// dir (tls/) on first start.
	TLS bool
	// TLSCertFile and TLSKeyFile serve HTTPS with this certificate (PEM,
	// chain after it) and key instead; TLSCAFile, when set, is the CA that
	// issued it, for clients to pin (else they trust the system's roots).
	TLSCertFile, TLSKeyFile, TLSCAFile string
	// InsecureListen allows plain HTTP on an address other than loopback.
	InsecureListen bool
	// Store is where the workspace's state lives: "" for the SQLite
	// database in the data dir, or the postgres:// URL of a database that
	// several servers (replicas) may share; one of them leads (docs/ha.md).
	Store string
	// LeaseTTL is, with a shared store, how long a leader that stopped
	// renewing its lease (paused, cut off from the database) holds up a
	// takeover; a leader whose process died is replaced sooner (default 5 s).
	LeaseTTL time.Duration
}

// Files inside the data dir.
const (
	dbFile         = "paddock.db"
	keyFile        = "secret.key"
	adminTokenFile = "admin.token"
	lockFile       = "paddock.lock"
	adminUser      = "admin"
)

// process is one running server: its parts, built by open and build.
type process struct {
	o       Options
	log     *slog.Logger
	dataDir string
	url     string // https:// with TLS
	clock   clock.Clock
	notify  *notify.Notifier
	// tls, when set, is what the HTTPS server presents; caPEM is the CA
	// its clients pin (nil: the system's roots).
	tls   *tls.Config
	caPEM []byte

	st store.Store
	// elector, with a store several servers share, elects the one that
	// leads; nil when this server leads alone (SQLite).
	elector store.Elector
	ha      haState
	box     *secret.Box
	sizes   *compute.Catalog
	arts    *artifact.Store
	token   string // the admin's

	providers  *provider.Registry
	disp       *dispatch.Dispatcher
	identities *identities.Service
	// policy records when the workspace policy stops something.
	policy    *policy.Recorder
	nodes     *nodes.Controller
	provision *provisioning.Controller
	targets   *targets.Service
	runs      *runs.Service
	users     *users.Service
	audit     *audit.Log
	local     *localagent.Supervisor
	hide      []string // what runs must not see
}

// Run starts the workspace server and serves until ctx ends, then shuts
// down cleanly: in-flight requests finish, loops stop, the store closes.
func Run(ctx context.Context, o Options) error {
	start := time.Now()
	notDumpable()
	if err := checkListen(o); err != nil {
		return err
	}
	if o.Store != "" && !postgres.IsDSN(o.Store) {
		return api.Invalid("store", "--store must be a postgres:// URL (without it, the SQLite database in the data dir is used), not %q", o.Store)
	}
	shared := o.Store != ""
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir %s: %w", dataDir, err)
	}
	if err := privateDataDir(dataDir, !shared, o.Log); err != nil {
		return err
	}
	// Replicas on one host may share the data dir (the key, the admin
	// token, the artifacts); a SQLite server has it to itself.
	lock, err := lockDataDir(dataDir, shared)
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
	if o.PprofListen != "" {
		stop, err := servePprof(o.PprofListen, o.Log)
		if err != nil {
			return err
		}
		defer stop()
	}
	p := &process{o: o, log: o.Log, dataDir: dataDir, clock: clock.Real, notify: &notify.Notifier{}}
	if err := p.openStore(ctx); err != nil {
		return err
	}
	defer p.st.Close()
	// Servers starting together on one database make the key, the admin
	// token, the CA and the built-in targets once.
	if err := p.bootstrap(ctx, func() error {
		if err := p.setupTLS(ln); err != nil {
			return err
		}
		if err := p.open(ctx); err != nil {
			return err
		}
		return p.build(ctx)
	}); err != nil {
		return err
	}
	if err := p.startReplica(ctx); err != nil {
		return err
	}
	defer p.stopReplica()
	cfgPath, err := clientconfig.Save(clientconfig.Config{Server: p.clientServers(ctx), Token: p.token, Workspace: targets.DefaultName, CA: string(p.caPEM)})
	if err != nil {
		return fmt.Errorf("writing the CLI config: %w", err)
	}
	if !shared {
		if err := lock.describe(p.url); err != nil {
			return err
		}
	}
	return p.serve(ctx, ln, func() {
		p.log.Info("paddock is serving", "version", version.Version, "url", p.url, "workspace", targets.DefaultName,
			"data_dir", dataDir, "store", p.storeName(), "cli_config", cfgPath, "startup", time.Since(start).Round(time.Millisecond))
	})
}

// openStore opens the SQLite database in the data dir, or the PostgreSQL
// database of --store.
func (p *process) openStore(ctx context.Context) error {
	if p.o.Store == "" {
		st, err := sqlite.Open(ctx, filepath.Join(p.dataDir, dbFile))
		if err != nil {
			return err
		}
		p.st = st
		return nil
	}
	st, err := postgres.Open(ctx, p.o.Store, postgres.Options{LeaseTTL: p.o.LeaseTTL, Log: p.log})
	if err != nil {
		return fmt.Errorf("opening the PostgreSQL store: %w", err)
	}
	p.st, p.elector = st, st
	return nil
}

// storeName says which store serves, for the log (without a password).
func (p *process) storeName() string {
	if p.o.Store == "" {
		return "sqlite"
	}
	if u, err := url.Parse(p.o.Store); err == nil {
		return "postgres://" + u.Host + u.Path
	}
	return "postgres"
}

// bootstrap runs f under the store's bootstrap lock, when it has one.
func (p *process) bootstrap(ctx context.Context, f func() error) error {
	if l, ok := p.st.(store.Locker); ok {
		return l.WithLock(ctx, "bootstrap", f)
	}
	return f()
}

// open opens what the data dir holds: the secret key, the size catalog,
// the admin's token and the artifacts.
func (p *process) open(ctx context.Context) (err error) {
	if p.box, err = secret.LoadOrCreateKey(filepath.Join(p.dataDir, keyFile)); err != nil {
		return err
	}
	if p.sizes, err = compute.NewCatalog(filepath.Join(p.dataDir, compute.SizesFile)); err != nil {
		return fmt.Errorf("the size file is invalid: %w", err)
	}
	p.sizes.Log = p.log
	adminFile := filepath.Join(p.dataDir, adminTokenFile)
	p.audit = &audit.Log{Store: p.st, Clock: p.clock, Retention: p.o.AuditRetention}
	p.audit.Init()
	p.users = &users.Service{Store: p.st, Clock: p.clock,
		OnAdminRotated: func(tok string) error { return writeAdminToken(adminFile, tok) }}
	if p.token, err = ensureAdmin(ctx, p.users, adminFile, p.log); err != nil {
		return err
	}
	if p.arts, err = artifact.New(filepath.Join(p.dataDir, "artifacts")); err != nil {
		return err
	}
	if n, err := p.arts.MakePrivate(); err != nil {
		return fmt.Errorf("making the artifacts private: %w", err)
	} else if n > 0 {
		p.log.Warn("tightened the permissions of artifacts an earlier version left readable by others", "dir", filepath.Join(p.dataDir, "artifacts"), "entries", n)
	}
	return nil
}

// build makes the dispatcher, the controllers and the services, and
// connects them: each controller subscribes to the topics it acts on, each
// producer publishes to the one notifier. What only the leader runs (the
// providers, the loops) is made and started by lead.
func (p *process) build(ctx context.Context) error {
	// Runs never see the server's files: its data dir, and the CLI config
	// holding the admin token wherever it is.
	p.hide = []string{p.dataDir}
	if cfg, err := clientconfig.Path(); err == nil {
		p.hide = append(p.hide, cfg)
	}
	// Policy events go to the server log and the audit log.
	p.policy = &policy.Recorder{Log: p.log, Auditor: audit.Policies{Recorder: p.audit, Log: p.log}}
	p.identities = &identities.Service{Store: p.st, Box: p.box, Clock: p.clock}
	p.disp = dispatch.New(p.st, p.box, p.log, p.clock, dispatch.Options{NodeLostAfter: p.o.NodeLostAfter, APIURL: p.url, Notifier: p.notify,
		Policy: p.policy})
	p.nodes = &nodes.Controller{Store: p.st, Dispatch: p.disp, Sizes: p.sizes, Log: p.log,
		Clock: p.clock, ServerURL: p.url, NewToken: tokens.NewNode, TokenHash: tokens.Hash, HomesDir: filepath.Join(p.dataDir, "homes"),
		Policy: p.policy}
	p.nodes.Init()
	p.provision = provisioning.New(p.st, compute.ProvisionEnv{
		ProviderAvailable: func(name string) bool {
			if p.providers == nil {
				return false
			}
			_, ok := p.providers.Get(name)
			return ok
		},
		ReleaseNodes: p.nodes.ReleaseNodes,
	}, p.log, p.clock, p.notify)
	p.targets = &targets.Service{Store: p.st, Box: p.box, Sizes: p.sizes, Clock: p.clock, Notifier: p.notify,
		ActiveRuns: p.disp.ActiveRuns, CancelRun: p.disp.CancelRun, Nodes: p.disp.Nodes,
		Identities: p.identities, Policy: p.policy}
	if err := p.targets.EnsureBuiltins(ctx, targets.DefaultName, adminUser); err != nil {
		return err
	}
	p.runs = &runs.Service{Store: p.st, Dispatch: p.disp, Computes: p.targets, HasSource: p.arts.HasSnapshot, HasFile: p.arts.HasRunFile, Log: p.log,
		Clock: p.clock, MaxLogBytes: p.o.MaxRunLogBytes}
	p.provision.Watch(p.notify)
	p.nodes.Watch(p.notify)
	p.runs.Watch(p.notify)
	p.local = &localagent.Supervisor{
		Dir: filepath.Join(p.dataDir, "local-agent"), Workspace: targets.DefaultName, Log: p.log, CA: p.caPEM,
		AddNode: p.disp.AddNode, TokenHash: tokens.Hash, NewToken: tokens.NewNode,
		Busy:      func() bool { return p.disp.NodeBusy(context.Background(), localagent.NodeID) },
		ExtraArgs: hideArgs(p.hide),
	}
	return nil
}

// leaderLoops are what the leader runs, to wait for at shutdown.
type leaderLoops struct {
	done     chan error    // a control loop that stopped (provisioning)
	dispDone chan struct{} // the dispatcher's loop has returned
}

// lead makes this server the one that places runs and realises targets:
// it makes the providers (adopting the nodes and agents a previous leader
// left), loads the runs and nodes from the store and starts the
// dispatcher, the controllers and the local target's agent. Agents and
// runs are given the URLs of every replica, so they fail over.
func (p *process) lead(ctx, loops context.Context) (*leaderLoops, error) {
	urls := p.agentServers(ctx)
	var err error
	p.providers, err = provider.Build(loops, provider.Env{DataDir: p.dataDir, ServerURL: urls, CA: p.caPEM, Log: p.log, Hide: p.hide,
		PreemptEvery: p.o.PreemptEvery, Sim: p.o.Sim, SimPollWait: p.o.SimPollWait, SimHeartbeat: p.o.SimHeartbeat,
		Target: p.attachedTarget, NodeHost: p.nodeHost})
	if err != nil {
		return nil, err
	}
	p.nodes.Providers, p.nodes.ServerURL = p.providers, urls
	if p.elector != nil {
		p.nodes.Servers = p.ha.serversJoined
	}
	p.disp.SetAPIURL(urls)
	if err := p.disp.Load(ctx); err != nil {
		return nil, fmt.Errorf("loading runs: %w", err)
	}
	l := &leaderLoops{done: make(chan error, 1), dispDone: make(chan struct{})}
	go func() { l.done <- p.provision.Run(loops) }()
	go func() { p.disp.Run(loops); close(l.dispDone) }()
	go func() {
		if err := p.nodes.Run(loops); err != nil && loops.Err() == nil {
			p.log.Error("the node controller stopped", "err", err)
		}
	}()
	// The dispatcher runs: requests may come (a follower forwards them).
	p.ha.leading.Store(true)
	if term := p.ha.currentTerm(); term != nil {
		p.log.Info("this server leads the workspace", "epoch", term.Epoch(), "took", time.Since(p.ha.wonAt).Round(time.Millisecond))
	}
	if !p.o.NoLocalAgent {
		if err := p.local.Start(loops, urls); err != nil {
			return l, fmt.Errorf("starting the local agent: %w", err)
		}
	}
	// Clusters made for one run whose run ended while no server led.
	go p.runs.SweepRunClusters(loops)
	return l, nil
}

// attachedTarget opens an attached target for a provider: its record and
// secrets.
func (p *process) attachedTarget(ctx context.Context, ws, name string) (store.Compute, map[string]secret.Value, error) {
	rec, err := p.st.GetCompute(ctx, ws, name)
	if err != nil {
		return rec, nil, err
	}
	secrets, err := p.targets.OpenSecrets(rec)
	return rec, secrets, err
}

// nodeHost names the attached target a node was made on or through: its
// host (a pool host), else its own target (a remote machine, a Slurm
// login node).
func (p *process) nodeHost(ctx context.Context, nodeID string) (string, string, error) {
	nodes, err := p.st.Nodes(ctx)
	if err != nil {
		return "", "", err
	}
	for _, n := range nodes {
		if n.ID == nodeID {
			if n.Host != "" {
				return n.Workspace, n.Host, nil
			}
			return n.Workspace, n.Compute, nil
		}
	}
	return "", "", fmt.Errorf("node %s is not known", nodeID)
}

// serve runs the HTTP server and the loops until ctx ends or one of them
// stops, then shuts down: requests first, then the loops. ready is called
// once requests are accepted. A server alone leads at once; one of several
// replicas campaigns for the lease, serving as a follower until it wins,
// and stops if it loses the lease (its supervisor starts it again, as a
// follower).
func (p *process) serve(ctx context.Context, ln net.Listener, ready func()) error {
	loops, stopLoops := context.WithCancel(context.Background())
	defer stopLoops()
	handler, err := p.handler(loops)
	if err != nil {
		return err
	}
	go p.sizes.Watch(loops, 2*time.Second)
	usersDone := make(chan struct{}) // its last flush of token use needs the store
	go func() { p.users.Run(loops, 0); close(usersDone) }()
	auditCtx, stopAudit := context.WithCancel(context.Background()) // until the last request is recorded
	auditDone := make(chan struct{})
	go func() { p.audit.Run(auditCtx); close(auditDone) }()
	defer func() { stopAudit(); <-auditDone }()
	// Requests (long polls and log follows included) end when reqCtx does.
	reqCtx, endRequests := context.WithCancel(context.Background())
	defer endRequests()
	srv := server.NewHTTPServer(p.replicaHandler(handler), reqCtx, p.log, server.DefaultTimeouts)
	serveErr := make(chan error, 1)
	if p.tls != nil {
		srv.TLSConfig = p.tls
		go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { serveErr <- srv.Serve(ln) }()
	}
	var lead *leaderLoops
	endCampaign := func() {}
	leadCh := make(chan *leaderLoops, 1)
	lost := make(chan error, 1)
	if p.elector == nil {
		l, err := p.lead(ctx, loops)
		if l != nil {
			lead = l
		}
		if err != nil {
			stopLoops()
			p.waitLoops(lead)
			<-usersDone
			return err
		}
	} else {
		campaigning, stopCampaign := context.WithCancel(loops)
		defer stopCampaign()
		settled := make(chan struct{})
		go p.campaign(campaigning, loops, leadCh, lost, settled)
		// At shutdown, campaigning stops, and a takeover under way ends
		// before what the leader started is stopped.
		endCampaign = func() {
			stopCampaign()
			select {
			case <-settled:
			case <-time.After(10 * time.Second): // taking the lead is stuck (the database?)
				stopLoops()
				<-settled
			}
			select {
			case l := <-leadCh:
				lead = l
			default:
			}
		}
	}
	ready()
	if p.o.Ready != nil {
		p.o.Ready(p.url)
	}
	var loopsDone chan error
	if lead != nil {
		loopsDone = lead.done
	}
	var runErr error
	keepLocalAgent := false
wait:
	for {
		select {
		case <-ctx.Done():
			p.log.Info("shutting down")
			break wait
		case err := <-serveErr:
			stopLoops()
			p.waitLoops(lead)
			<-usersDone
			return err
		case err := <-loopsDone:
			loopsDone <- err
			p.log.Error("a control loop stopped", "err", err)
			break wait
		case l := <-leadCh:
			lead, loopsDone = l, l.done
		case err := <-lost:
			// Another replica leads now, or will: stop at once, leaving the
			// agents to it.
			p.log.Error("this server no longer leads the workspace; stopping so that it can start again as a follower", "err", err)
			runErr, keepLocalAgent = err, true
			stopLoops()
			break wait
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	endRequests()
	err = srv.Shutdown(shutdownCtx)
	endCampaign()
	if lead != nil && !keepLocalAgent {
		p.local.Stop()
	}
	stopLoops()
	p.waitLoops(lead)
	<-usersDone
	if lead != nil && runErr == nil {
		p.resign()
	}
	if runErr != nil {
		err = runErr
	} else if lead != nil {
		select {
		case lerr := <-lead.done:
			if lerr != nil && err == nil {
				err = lerr
			}
		default:
		}
	}
	p.log.Info("stopped")
	return err
}

// waitLoops waits for the leader's loops to return, once they are told to.
func (p *process) waitLoops(l *leaderLoops) {
	if l == nil {
		return
	}
	<-l.dispDone
	select {
	case err := <-l.done:
		l.done <- err
	case <-time.After(15 * time.Second):
		p.log.Warn("the provisioning loop did not stop within 15 s")
	}
}

// handler is everything the server serves on its one address: the API
// (under /api/, with /healthz and /metrics) and the studio (the rest).
func (p *process) handler(loops context.Context) (http.Handler, error) {
	a := server.NewAPI(server.Deps{Targets: p.targets, Users: p.users, Audit: p.audit, Runs: p.runs, Store: p.st, Dispatch: p.disp,
		Artifacts: p.arts, Nodes: p.nodes, Identities: p.identities, Log: p.log, Clock: p.clock, Servers: p.ha.serverList})
	st, err := studio.New(studio.Deps{Targets: p.targets, Runs: p.runs, Users: p.users, Store: p.st, Dispatch: p.disp,
		Artifacts: p.arts, Nodes: p.nodes, Audit: p.audit, Notifier: p.notify, Log: p.log, Clock: p.clock, Secure: p.tls != nil})
	if err != nil {
		return nil, err
	}
	go st.Run(loops)
	mux := http.NewServeMux()
	for _, path := range []string{"/api/", "/healthz", "/metrics"} {
		mux.Handle(path, a)
	}
	mux.Handle("/", st)
	return mux, nil
}

// hideArgs are the agent flags that hide paths from runs.
func hideArgs(paths []string) []string {
	var args []string
	for _, p := range paths {
		args = append(args, "--hide", p)
	}
	return args
}
