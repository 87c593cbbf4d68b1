package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/certs"
	"github.com/paddock-ml/paddock/internal/replica"
	"github.com/paddock-ml/paddock/internal/server"
	"github.com/paddock-ml/paddock/internal/store"
)

// haState is what a replica of a shared store keeps about the others.
type haState struct {
	self    store.Replica
	leading atomic.Bool
	leader  *replica.Leader
	stop    context.CancelFunc // ends the heartbeat and the change listener

	mu      sync.Mutex
	term    store.Term
	wonAt   time.Time // when term began
	servers []string  // every replica's URL, this one (the leader) first
}

// serverList is what agents are told with their work: every replica's
// URL, or nil for a server alone.
func (h *haState) serverList() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.servers
}

// currentTerm is the term this server holds, nil while it follows.
func (h *haState) currentTerm() store.Term {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.term
}

// serversJoined is serverList comma-separated, for new nodes' agents.
func (h *haState) serversJoined() string { return strings.Join(h.serverList(), ",") }

// errLostLead is why a leader stops when its lease ends.
var errLostLead = errors.New("the leader lease was lost (another replica took over, or the database could not be reached for longer than the lease)")

// startReplica announces this server to the others sharing the store,
// makes its fenced writes wait for a term, and listens for their changes:
// a run another server changed wakes this one's watchers, a new leader
// is where forwarded requests go.
func (p *process) startReplica(ctx context.Context) error {
	if p.elector == nil {
		return nil
	}
	host, _ := os.Hostname()
	p.ha.self = store.Replica{ID: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), strings.ToLower(rand.Text()[:6])),
		URL: p.url, Started: time.Now().UTC()}
	p.elector.Follow()
	bg, stop := context.WithCancel(context.Background())
	p.ha.stop = stop
	if err := p.elector.Register(bg, p.ha.self); err != nil {
		stop()
		return fmt.Errorf("registering this replica: %w", err)
	}
	p.ha.leader = &replica.Leader{Lookup: func(ctx context.Context) (string, int64, error) {
		r, epoch, ok, err := p.elector.Leader(ctx)
		if err != nil || !ok {
			return "", epoch, err
		}
		return r.URL, epoch, nil
	}}
	if ch, ok := p.st.(store.Changes); ok {
		go ch.WatchChanges(bg, func(ids []string) {
			for _, id := range ids {
				p.disp.NotifyLogs(id)
			}
		}, func() { p.ha.leader.Changed(bg) }, p.disp.NotifyAll)
	}
	return nil
}

// stopReplica ends the heartbeat (the other replicas stop listing this
// one) and the change listener.
func (p *process) stopReplica() {
	if p.ha.stop != nil {
		p.ha.stop()
	}
}

// campaign waits for this server to win the lease (until ctx ends), then
// leads until the loops end or the lease is lost (told on lost). settled
// is closed once it gave up campaigning or has taken the lead (its loops
// sent on led): then a shutdown knows what to stop.
func (p *process) campaign(ctx, loops context.Context, led chan<- *leaderLoops, lost chan<- error, settled chan<- struct{}) {
	term, err := p.elector.Campaign(ctx, p.ha.self)
	if err != nil {
		close(settled)
		return // the server is stopping
	}
	p.ha.mu.Lock()
	p.ha.term, p.ha.wonAt = term, time.Now()
	p.ha.mu.Unlock()
	l, err := p.lead(loops, loops)
	if l != nil {
		led <- l
	}
	close(settled)
	if err != nil {
		lost <- fmt.Errorf("taking the lead: %w", err)
		return
	}
	select {
	case <-term.Lost():
		p.ha.leading.Store(false)
		lost <- errLostLead
	case <-loops.Done():
	}
}

// resign gives the lease up at a clean shutdown, after the loops' last
// writes, so that another replica takes over at once.
func (p *process) resign() {
	term := p.ha.currentTerm()
	if term == nil {
		return
	}
	p.ha.leading.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := term.Resign(ctx); err != nil {
		p.log.Warn("giving up the leader lease", "err", err)
		return
	}
	p.log.Info("gave up the leader lease", "epoch", term.Epoch())
}

// replicaURLs lists this server's URL, then every other live replica's.
func (p *process) replicaURLs(ctx context.Context) ([]string, error) {
	urls := []string{p.url}
	rs, err := p.elector.Replicas(ctx)
	for _, r := range rs {
		if !slices.Contains(urls, r.URL) {
			urls = append(urls, r.URL)
		}
	}
	return urls, err
}

// agentServers is the server URL given to agents and runs: this server's,
// or, with replicas, every live replica's, comma-separated, this one first.
func (p *process) agentServers(ctx context.Context) string {
	if p.elector == nil {
		return p.url
	}
	urls, err := p.replicaURLs(ctx)
	if err != nil {
		p.log.Warn("listing the replicas", "err", err)
	}
	p.ha.mu.Lock()
	p.ha.servers = urls
	p.ha.mu.Unlock()
	go p.refreshServers(ctx)
	return strings.Join(urls, ",")
}

// refreshServers keeps the list agents are told up to date as replicas
// come and go, while this server leads.
func (p *process) refreshServers(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		urls, err := p.replicaURLs(ctx)
		if err != nil {
			continue
		}
		p.ha.mu.Lock()
		changed := !slices.Equal(p.ha.servers, urls)
		p.ha.servers = urls
		p.ha.mu.Unlock()
		if changed {
			p.log.Info("the replicas changed; agents are told", "servers", strings.Join(urls, ","))
		}
	}
}

// clientServers is the server URL written to the CLI config: this
// server's, then the other replicas' known now.
func (p *process) clientServers(ctx context.Context) string {
	if p.elector == nil {
		return p.url
	}
	urls, _ := p.replicaURLs(ctx)
	return strings.Join(urls, ",")
}

// replicaHandler is the API for a server alone, and for a replica the API
// behind the follower's forwarding (internal/replica).
func (p *process) replicaHandler(local http.Handler) http.Handler {
	if p.elector == nil {
		return local
	}
	tr := api.NewTransport(nil)
	if len(p.caPEM) > 0 {
		pool, _ := certs.Pool(p.caPEM)
		tr = api.NewTransport(pool)
	}
	tr.MaxIdleConnsPerHost = 64
	return &replica.Handler{
		Local:          local,
		Self:           p.url,
		Leading:        p.ha.leading.Load,
		FollowerServes: server.FollowerServes,
		Leader:         p.ha.leader,
		Transport:      tr,
		Sign:           func(addr string) string { return p.box.Sign("forwarded-for", addr) },
		Verify:         func(addr, sig string) bool { return p.box.Verify(sig, "forwarded-for", addr) },
		Log:            p.log,
	}
}
