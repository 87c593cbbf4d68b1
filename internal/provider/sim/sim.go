// Package sim is a node provider for load and scale work — a test and demo
// tool, never a default (`paddock up --sim`). Each node is a lightweight
// agent inside the server's process that speaks the real agent protocol
// over loopback HTTP(S): it says hello with the cores and memory of its
// vm_size, polls for work, and "runs" an assignment by reporting Running,
// waiting as long as the run asks (a command `sleep N`, or
// SIM_SECONDS in its environment) and reporting Completed.
package sim

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/backoff"
	"github.com/paddock-ml/paddock/internal/certs"
	"github.com/paddock-ml/paddock/internal/provider"
)

// Options tune the simulated agents.
type Options struct {
	// PollWait is how long a poll may be held (long-poll, as real agents
	// do). Zero makes agents poll without waiting every Heartbeat instead:
	// no connection is held, so 10,000 agents fit in one process.
	PollWait  time.Duration
	Heartbeat time.Duration
	// RootCAs are the CAs agents trust for an https server (nil: the
	// system's roots).
	RootCAs *x509.CertPool
}

// Provider runs simulated nodes.
type Provider struct {
	ctx    context.Context
	opts   Options
	log    *slog.Logger
	client *http.Client

	mu    sync.Mutex
	nodes map[string]context.CancelFunc
}

var _ provider.Provider = (*Provider)(nil)

func init() {
	provider.Register("sim", func(ctx context.Context, env provider.Env) (provider.Provider, error) {
		if !env.Sim {
			return nil, nil // only on a server started with --sim
		}
		opts := Options{PollWait: env.SimPollWait, Heartbeat: env.SimHeartbeat}
		if len(env.CA) > 0 {
			pool, err := certs.Pool(env.CA)
			if err != nil {
				return nil, fmt.Errorf("sim provider: the server's CA: %w", err)
			}
			opts.RootCAs = pool
		}
		return New(ctx, opts, env.Log), nil
	})
}

// maxHeartbeatConns bounds the connections of agents that poll without
// waiting (PollWait 0).
const maxHeartbeatConns = 1024

// New returns the provider; its agents stop when ctx ends.
func New(ctx context.Context, opts Options, log *slog.Logger) *Provider {
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 10 * time.Second
	}
	t := api.NewTransport(opts.RootCAs)
	// Connections stay open between polls: the default transport keeps
	// 100 idle in all, so every burst above that closed connections and
	// dialed them again (a tenth of the process's CPU at 50,000 nodes).
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 0, 256
	if opts.PollWait == 0 {
		// Heartbeating agents hold no connection, so a bounded pool serves
		// them all: when the server falls behind, their polls queue here
		// instead of each opening a socket, which in one process (client
		// and server ends both count) ran out of file descriptors at
		// 20,000 nodes.
		t.MaxConnsPerHost, t.MaxIdleConnsPerHost = maxHeartbeatConns, maxHeartbeatConns
	}
	return &Provider{ctx: ctx, opts: opts, log: log, client: &http.Client{Transport: t, Timeout: opts.PollWait + 30*time.Second},
		nodes: map[string]context.CancelFunc{}}
}

// Name implements provider.Provider.
func (p *Provider) Name() string { return "sim" }

// Create implements provider.Provider.
func (p *Provider) Create(_ context.Context, spec provider.NodeSpec) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.nodes[spec.ID]; ok {
		return nil
	}
	ctx, cancel := context.WithCancel(p.ctx)
	p.nodes[spec.ID] = cancel
	c := api.NewClient(spec.ServerURL, spec.Token, "")
	c.HTTP = p.client
	go p.run(ctx, c, spec)
	return nil
}

// Delete implements provider.Provider.
func (p *Provider) Delete(_ context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cancel, ok := p.nodes[id]; ok {
		cancel()
		delete(p.nodes, id)
	}
	return nil
}

// List implements provider.Provider.
func (p *Provider) List(context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Keys(p.nodes)), nil
}

// run is one simulated agent.
func (p *Provider) run(ctx context.Context, c *api.Client, spec provider.NodeSpec) {
	hello := api.AgentHello{Hostname: "sim-" + spec.ID, Cores: spec.Cores, MemoryGB: spec.MemoryGB, Version: "sim", Address: spec.ID}
	for ctx.Err() == nil {
		if err := c.Do(ctx, http.MethodPost, "/api/v1/agent/hello", hello, nil); err == nil {
			break
		}
		sleep(ctx, 200*time.Millisecond)
	}
	var mu sync.Mutex
	active := map[string]api.AttemptRef{}
	for ctx.Err() == nil {
		mu.Lock()
		refs := make([]api.AttemptRef, 0, len(active))
		for _, r := range active {
			refs = append(refs, r)
		}
		mu.Unlock()
		var work api.AgentWork
		err := c.Do(ctx, http.MethodPost, "/api/v1/agent/poll", api.AgentPoll{Active: refs, WaitMS: int(p.opts.PollWait / time.Millisecond)}, &work)
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		for _, as := range work.Assignments {
			ref := api.AttemptRef{RunID: as.RunID, Attempt: as.Attempt}
			mu.Lock()
			if _, dup := active[as.RunID]; dup {
				mu.Unlock()
				continue
			}
			active[as.RunID] = ref
			mu.Unlock()
			go func() {
				defer func() { mu.Lock(); delete(active, as.RunID); mu.Unlock() }()
				path := "/api/v1/agent/runs/" + as.RunID + "/attempts/" + strconv.Itoa(as.Attempt) + "/status"
				if !report(ctx, c, path, api.AttemptReport{Status: api.RunRunning}) {
					return
				}
				sleep(ctx, duration(as))
				zero := 0
				report(ctx, c, path, api.AttemptReport{Status: api.RunCompleted, ExitCode: &zero})
			}()
		}
		if p.opts.PollWait == 0 && len(work.Assignments) == 0 {
			sleep(ctx, p.opts.Heartbeat)
		}
	}
}

// report sends an attempt's status as a real agent does: again and again
// until the server has it, says the attempt is no longer current, or ctx
// ends; the attempt stays in the agent's active list meanwhile. (Giving up
// after one failed try under load made the server take the attempt for
// lost: the next poll no longer listed it.) It reports whether the
// attempt is still current.
func report(ctx context.Context, c *api.Client, path string, rep api.AttemptReport) bool {
	return backoff.New(100*time.Millisecond, 5*time.Second).Retry(ctx, func() error {
		return c.Do(ctx, http.MethodPost, path, rep, nil)
	}, func(err error) bool {
		return errors.Is(err, api.ErrConflict) || errors.Is(err, api.ErrNotFound)
	}) == nil
}

// duration is how long a simulated run lasts.
func duration(as api.Assignment) time.Duration {
	if s, err := strconv.ParseFloat(as.Env["SIM_SECONDS"], 64); err == nil {
		return time.Duration(s * float64(time.Second))
	}
	if len(as.Command) == 2 && as.Command[0] == "sleep" {
		if s, err := strconv.ParseFloat(as.Command[1], 64); err == nil {
			return time.Duration(s * float64(time.Second))
		}
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
