// Package local is the local node provider: each node of a cluster is a
// `paddock agent` process on this host, with the cores and memory of the
// cluster's vm_size (runs are cgroup-limited by the agent), its own work
// directory and its own loopback address (127.0.1.N), so multi-node runs
// see several hosts. Agents run in their own sessions and outlive a server
// restart; the restarted server adopts them.
package local

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/internal/agent/proc"
	"github.com/paddock-ml/paddock/internal/localagent"
	"github.com/paddock-ml/paddock/internal/provider"
)

// Provider runs nodes as local processes.
type Provider struct {
	dir    string   // one AgentDir per node below it
	ca     []byte   // the CA agents pin (PEM; nil: the system's roots)
	hide   []string // what runs must not see besides their agent's files
	log    *slog.Logger
	events chan provider.Event

	mu     sync.Mutex
	lowPri map[string]bool   // low-priority nodes: the ones random preemption picks from
	nodes  map[string]bool   // created and not deleted by us
	gone   map[string]bool   // reported gone or preempted
	addrs  map[string]string // each node's loopback address, adopted nodes' included
	lastIP int               // the last host number handed out
}

var (
	_ provider.Provider  = (*Provider)(nil)
	_ provider.Preempter = (*Provider)(nil)
	_ provider.Watcher   = (*Provider)(nil)
)

var nodeID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

func init() {
	provider.Register("local", func(ctx context.Context, env provider.Env) (provider.Provider, error) {
		p, err := New(ctx, filepath.Join(env.DataDir, "nodes"), env.ServerURL, env.CA, env.Hide, env.Log)
		if err != nil {
			return nil, err
		}
		if env.PreemptEvery > 0 {
			go p.PreemptRandomly(ctx, env.PreemptEvery)
		}
		return p, nil
	})
}

// New returns a provider keeping its nodes under dir, whose agents connect
// to serverURL pinning ca (PEM; nil: the system's roots). Nodes that
// survived a restart are told the server's new URL and CA. It watches its
// agents and reports one that dies on its own as gone. Runs on its nodes
// do not see the paths in hide (the server's data dir, its CLI config).
func New(ctx context.Context, dir, serverURL string, ca []byte, hide []string, log *slog.Logger) (*Provider, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &Provider{dir: dir, ca: ca, hide: hide, log: log, events: make(chan provider.Event, 256), nodes: map[string]bool{}, gone: map[string]bool{},
		lowPri: map[string]bool{}, addrs: map[string]string{}}
	ids, err := p.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		p.nodes[id] = true
		if addr := p.agent(id).Flag("address"); addr != "" {
			p.addrs[id] = addr
		}
		if err := p.agent(id).SetServer(serverURL); err != nil {
			return nil, err
		}
		if err := p.agent(id).SetCA(ca); err != nil {
			return nil, err
		}
	}
	go p.watch(ctx)
	return p, nil
}

// Name implements provider.Provider.
func (p *Provider) Name() string { return "local" }

func (p *Provider) agent(id string) localagent.AgentDir {
	return localagent.AgentDir(filepath.Join(p.dir, id))
}

// Create implements provider.Provider.
func (p *Provider) Create(ctx context.Context, spec provider.NodeSpec) error {
	if !nodeID.MatchString(spec.ID) {
		return fmt.Errorf("local provider: bad node id %q", spec.ID)
	}
	d := p.agent(spec.ID)
	if d.AlivePID() != 0 {
		return nil // a retried create
	}
	if _, err := d.Token(func() string { return spec.Token }); err != nil {
		return err
	}
	if err := d.SetServer(spec.ServerURL); err != nil {
		return err
	}
	if err := d.SetCA(p.ca); err != nil {
		return err
	}
	// A node serving SSH keeps its endpoint beside its host key, so the
	// next node of the same instance answers at the same address and port
	// with the same key, and the user's known_hosts still matches.
	var endpointFile, wantAddr, wantPort string
	if spec.SSHAuthorizedKey != "" && spec.SSHHostKeyFile != "" {
		endpointFile = spec.SSHHostKeyFile + ".endpoint"
		if data, err := os.ReadFile(endpointFile); err == nil {
			wantAddr, wantPort, _ = net.SplitHostPort(strings.TrimSpace(string(data)))
		}
	}
	addr, err := p.allocAddress(spec.ID, wantAddr)
	if err != nil {
		return err
	}
	args := []string{"--cores", strconv.FormatFloat(spec.Cores, 'f', -1, 64),
		"--memory-gb", strconv.FormatFloat(spec.MemoryGB, 'f', -1, 64), "--address", addr,
		"--kill-grace", "5s", "--orphan-timeout", "2m", "--checkpoint-interval", "1s"}
	for _, h := range p.hide {
		args = append(args, "--hide", h)
	}
	if spec.HomeDir != "" {
		if err := os.MkdirAll(filepath.Dir(spec.HomeDir), 0o700); err != nil {
			return err
		}
		args = append(args, "--home", spec.HomeDir)
	}
	if spec.Owner != "" {
		args = append(args, "--owner", spec.Owner)
	}
	if spec.SSHAuthorizedKey != "" {
		keys := filepath.Join(string(d), "authorized_keys")
		if err := os.WriteFile(keys, []byte(spec.SSHAuthorizedKey+"\n"), 0o600); err != nil {
			return err
		}
		port, err := freePort(addr, wantPort)
		if err != nil {
			p.freeAddress(spec.ID)
			return err
		}
		endpoint := net.JoinHostPort(addr, strconv.Itoa(port))
		if err := os.WriteFile(endpointFile, []byte(endpoint+"\n"), 0o600); err != nil {
			p.freeAddress(spec.ID)
			return err
		}
		args = append(args, "--ssh-listen", endpoint,
			"--ssh-authorized-keys-file", keys, "--ssh-host-key-file", spec.SSHHostKeyFile)
	}
	pid, err := d.Spawn(args...)
	if err != nil {
		p.freeAddress(spec.ID)
		return err
	}
	// Watched only once its agent runs, so a creation is not mistaken
	// for a death.
	p.mu.Lock()
	p.nodes[spec.ID] = true
	p.lowPri[spec.ID] = spec.LowPriority
	delete(p.gone, spec.ID)
	p.mu.Unlock()
	p.log.Info("local node started", "node", spec.ID, "pid", pid, "address", addr, "cores", spec.Cores)
	return nil
}

// Delete implements provider.Provider.
func (p *Provider) Delete(ctx context.Context, id string) error {
	p.mu.Lock()
	delete(p.nodes, id)
	p.mu.Unlock()
	d := p.agent(id)
	d.Stop(10 * time.Second)
	p.freeAddress(id)
	return os.RemoveAll(string(d))
}

// Nodes get host numbers firstHost..lastHost of 127.0.1.0/24; 127.0.1.1 is
// left out, since Debian names the machine's own hostname with it.
const (
	firstHost = 2
	lastHost  = 254
)

// allocAddress gives a node a loopback address no other live node of this
// provider has (adopted nodes included): want when it is one and free,
// else the next going round the range, so a just freed address is the
// last to be used again.
func (p *Provider) allocAddress(id, want string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	used := make(map[string]bool, len(p.addrs))
	for other, a := range p.addrs {
		if other != id {
			used[a] = true
		}
	}
	if ip := net.ParseIP(want); ip != nil && !used[want] {
		if v4 := ip.To4(); v4 != nil && v4[0] == 127 && v4[1] == 0 && v4[2] == 1 && int(v4[3]) >= firstHost && int(v4[3]) <= lastHost {
			p.addrs[id] = want
			return want, nil
		}
	}
	addr, host, ok := nextAddress(used, p.lastIP)
	if !ok {
		return "", fmt.Errorf("local provider: every loopback address 127.0.1.%d-%d is in use by a node; delete nodes or lower max_nodes", firstHost, lastHost)
	}
	p.lastIP = host
	p.addrs[id] = addr
	return addr, nil
}

func (p *Provider) freeAddress(id string) {
	p.mu.Lock()
	delete(p.addrs, id)
	p.mu.Unlock()
}

// nextAddress is the first address 127.0.1.N after host number last (round
// the range) that is not used; ok is false when all are.
func nextAddress(used map[string]bool, last int) (addr string, host int, ok bool) {
	if last < firstHost || last > lastHost {
		last = firstHost - 1 // none handed out yet
	}
	n := lastHost - firstHost + 1
	for i := 1; i <= n; i++ {
		host = firstHost + (last-firstHost+i)%n
		addr = fmt.Sprintf("127.0.1.%d", host)
		if !used[addr] {
			return addr, host, true
		}
	}
	return "", 0, false
}

// List implements provider.Provider: the nodes whose agent is alive.
func (p *Provider) List(context.Context) ([]string, error) {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && p.agent(e.Name()).AlivePID() != 0 {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Preempt implements provider.Preempter: the node's agent is killed
// (SIGKILL, no goodbye), its runs' processes with it, as a reclaimed
// low-priority VM would be.
func (p *Provider) Preempt(ctx context.Context, id string) error {
	d := p.agent(id)
	if d.AlivePID() == 0 {
		return fmt.Errorf("node %s has no running agent", id)
	}
	p.mu.Lock()
	p.gone[id] = true
	p.mu.Unlock()
	d.Kill()
	// The runs die with the node: every process in their cgroups.
	runs, _ := os.ReadDir(filepath.Join(string(d), "work", "runs"))
	for _, r := range runs {
		if err := proc.KillLeftover(r.Name()); err != nil {
			p.log.Warn("killing a preempted node's run", "node", id, "attempt", r.Name(), "err", err)
		}
	}
	p.send(provider.Event{NodeID: id, Kind: provider.Preempted})
	return nil
}

// Events implements provider.Watcher.
func (p *Provider) Events() <-chan provider.Event { return p.events }

func (p *Provider) send(ev provider.Event) {
	select {
	case p.events <- ev:
	default:
		p.log.Warn("node event dropped: nobody is listening", "node", ev.NodeID, "kind", ev.Kind)
	}
}

// watch reports agents that died without being deleted.
func (p *Provider) watch(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		var ids []string
		for id := range p.nodes {
			if !p.gone[id] {
				ids = append(ids, id)
			}
		}
		p.mu.Unlock()
		for _, id := range ids {
			if p.agent(id).AlivePID() != 0 {
				continue
			}
			p.mu.Lock()
			still := p.nodes[id] && !p.gone[id]
			if still {
				p.gone[id] = true
			}
			p.mu.Unlock()
			if still {
				p.log.Warn("local node's agent exited", "node", id)
				p.send(provider.Event{NodeID: id, Kind: provider.Gone})
			}
		}
	}
}

// PreemptRandomly preempts a random low-priority node now and then, the
// gaps between preemptions exponentially distributed with the given mean,
// so demos and soak tests see what a cloud's spot capacity does. It
// returns when ctx ends.
func (p *Provider) PreemptRandomly(ctx context.Context, mean time.Duration) {
	for {
		wait := time.Duration(rand.ExpFloat64() * float64(mean))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		p.mu.Lock()
		var candidates []string
		for id, low := range p.lowPri {
			if low && p.nodes[id] && !p.gone[id] {
				candidates = append(candidates, id)
			}
		}
		p.mu.Unlock()
		if len(candidates) == 0 {
			continue
		}
		id := candidates[rand.IntN(len(candidates))]
		p.log.Info("random preemption", "node", id)
		if err := p.Preempt(ctx, id); err != nil {
			p.log.Warn("random preemption failed", "node", id, "err", err)
		}
	}
}

// freePort finds a free TCP port on addr: want when it is free, else any.
func freePort(addr, want string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, want))
	if err != nil && want != "" {
		ln, err = net.Listen("tcp", net.JoinHostPort(addr, "0"))
	}
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
