// Package provider is how a cluster's nodes are realised: processes on this
// host (local), hosts reached over SSH (ssh), Slurm allocations (slurm) or
// pods (kubernetes). Each provider implements Provider and registers a
// constructor under its name.
//
// Lifecycle and rules, for whoever writes a provider:
//
//  1. The server names a node and records it, with a fresh node token,
//     before it calls Create. Create starts `paddock agent` on the new node
//     with that token and the server's URL (NodeSpec) and returns once the
//     start is under way; the node becomes usable when its agent says
//     hello. Create must be idempotent: a retried Create of a node that
//     exists does not make a second one.
//  2. Delete stops the node's agent (SIGTERM: it stops its runs) and
//     releases the node. The server only deletes nodes it has drained (no
//     run placed). Delete of a node that is gone is not an error.
//  3. List returns the ids of the nodes the provider has now. After a
//     restart the server adopts the listed nodes it knows, deletes listed
//     nodes it does not know, and replaces known nodes that are not listed.
//  4. Optional extras are separate interfaces found by type assertion:
//     Preempter (inject a preemption), Watcher (report nodes that vanish or
//     are preempted without the server asking, or whose state changed),
//     Pooled (one node per host of a pool of attached machines), JobStates
//     (nodes are batch jobs the scheduler may end), NodeConfigurer
//     (settings of its own per node), Grouped (the nodes of one multi-node
//     run are made together, as one unit).
//
// A provider package registers a Factory under the provider's name from
// an init function; the server builds every registered provider at start
// (Build), so a new provider is a new package and an import.
//
// Methods may be called concurrently for different nodes; calls for one
// node are serialised by the server.
package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/store"
)

// NodeSpec is what a provider needs to make a node.
type NodeSpec struct {
	ID        string // unique node id, chosen by the server
	Workspace string
	Compute   string // the target's name
	Cores     float64
	MemoryGB  float64
	GPUs      int
	// LowPriority nodes may be preempted.
	LowPriority bool
	// Host, when set, is the attached target (a remote machine, an SSH
	// pool host, a Slurm login node) the node is made on or through.
	Host string
	// Config is the provider's own settings for this node, kept raw until
	// the provider decodes it (see NodeConfigurer).
	Config json.RawMessage
	// HomeDir, when set, is a directory the node uses as HOME for runs and
	// SSH sessions and that outlives the node (a compute instance's home).
	HomeDir string
	// Owner is the Paddock user a compute instance's node belongs to: its
	// home and SSH sessions are that user's.
	Owner string
	// SSHAuthorizedKey, when set, makes the node serve SSH for this OpenSSH
	// public key, with the host key kept in SSHHostKeyFile.
	SSHAuthorizedKey string
	SSHHostKeyFile   string
	// Token is the node's bearer token; ServerURL where its agent connects.
	Token     string
	ServerURL string
}

// Provider realises nodes.
type Provider interface {
	Name() string
	Create(ctx context.Context, spec NodeSpec) error
	Delete(ctx context.Context, nodeID string) error
	List(ctx context.Context) ([]string, error)
}

// Preempter can take a node back as a low-priority cloud VM would be: its
// agent and runs die without warning.
type Preempter interface {
	Preempt(ctx context.Context, nodeID string) error
}

// Adopter is a provider that can find, after a server restart, the nodes
// a previous server made, which List (what this process made) does not
// know: Adopt is given the nodes the store has for the provider and
// returns those that still exist, or whose existence cannot be checked
// now (their target is unreachable: they are kept, not failed). The
// nodes it returns are the provider's again, as if this process had made
// them.
type Adopter interface {
	Adopt(ctx context.Context, nodeIDs []string) []string
}

// Pooled is a provider whose nodes each take one host of a pool of
// attached machines (the cluster's from): a cluster has at most as many
// nodes as the pool has free hosts, and each node's spec names its host.
type Pooled interface {
	PoolHosts()
}

// JobStates is a provider whose nodes are batch jobs of a scheduler that
// may end them on its own (time limit, preemption, node failure).
type JobStates interface {
	// JobState is the job's state (PENDING, RUNNING, COMPLETED, CANCELLED,
	// TIMEOUT, PREEMPTED, NODE_FAIL, ...) and the scheduler's reason.
	JobState(ctx context.Context, nodeID string) (state, reason string, err error)
}

// NodeRequest is what a node is for, from which a provider makes its own
// settings (NodeConfigurer).
type NodeRequest struct {
	Workspace string
	// Host is the attached target nodes are made through (a Slurm login
	// node), when the provider needs one.
	Host        string
	Cores       float64
	MemoryGB    float64
	GPUs        int
	LowPriority bool
	// TimeMinutes limits the node's life (0: the provider's default).
	TimeMinutes int
	// OneRun nodes exist for one run and end with it.
	OneRun bool
	// RunID is that run, for providers that label what they make with it.
	RunID string
	// Image is the container image the node runs in, for providers whose
	// nodes are containers (a run's --image; "" for the target's default).
	Image string
}

// NodeConfigurer is a provider with settings of its own per node: the
// server asks for them (NodeSpec.Config) before it creates the node.
type NodeConfigurer interface {
	NodeConfig(ctx context.Context, req NodeRequest) (json.RawMessage, error)
}

// Grouped is a provider that makes the nodes of one multi-node run
// together, as one unit (a Kubernetes Indexed Job: one pod per node).
// CreateGroup follows Create's rules for every spec; Delete of any node
// of the group deletes the whole group, and Delete of the others is then
// a Delete of nodes that are gone.
type Grouped interface {
	CreateGroup(ctx context.Context, specs []NodeSpec) error
}

// TargetCloser is a provider that holds something for each attached
// target it makes nodes through (a watch on a Kubernetes cluster):
// CloseTarget lets it go once the target is detached and its nodes are
// released.
type TargetCloser interface {
	CloseTarget(ws, name string)
}

// EventKind says what happened to a node.
type EventKind string

// What can happen to a node without the server asking.
const (
	Preempted EventKind = "preempted" // taken back (low priority): its runs restart elsewhere
	Gone      EventKind = "gone"      // vanished, e.g. its process died
	// Changed says the node's state as the provider sees it changed (a
	// pod was scheduled, a job ended): the node's target is reconciled,
	// which reads the state (JobStates) and acts on it. Providers that
	// watch their backend send it instead of being polled.
	Changed EventKind = "changed"
)

// Event is something that happened to a node without the server asking.
type Event struct {
	NodeID string
	Kind   EventKind
	// Target is the store key (store.Key) of the node's target, for
	// Changed events.
	Target string
}

// Watcher reports node events as they happen. A provider that is a
// Watcher and JobStates is not polled: it sends Changed when a node's job
// state changes.
type Watcher interface {
	Events() <-chan Event
}

// Env is what providers are made from: the server's settings and the
// ways to reach what they need of it.
type Env struct {
	// DataDir is the server's data dir (providers keep their files below).
	DataDir   string
	ServerURL string
	Log       *slog.Logger
	// CA is the PEM CA certificate agents pin for an https ServerURL
	// (nil: the system's roots).
	CA []byte
	// Hide are paths runs on this host must not see (the server's data dir
	// and CLI config).
	Hide []string
	// PreemptEvery, when set, makes the local provider preempt a random
	// low-priority node on average this often (demos, soak tests).
	PreemptEvery time.Duration
	// Sim enables the sim provider; SimPollWait and SimHeartbeat tune its
	// agents.
	Sim                       bool
	SimPollWait, SimHeartbeat time.Duration
	// Target opens an attached target of a workspace: its record and
	// secrets.
	Target func(ctx context.Context, ws, name string) (store.Compute, map[string]secret.Value, error)
	// NodeHost names the workspace and attached target a node was made on
	// or through (its Host, else its own target).
	NodeHost func(ctx context.Context, nodeID string) (ws, name string, err error)
}

// Factory makes a provider; it returns nil when the server's settings do
// not enable it (sim without --sim). ctx ends when the server stops.
type Factory func(ctx context.Context, env Env) (Provider, error)

var (
	factoriesMu sync.Mutex
	factories   = map[string]Factory{}
)

// Register makes a provider known by name; each provider package calls it
// from init. A duplicate name is a bug.
func Register(name string, f Factory) {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	if _, dup := factories[name]; dup {
		panic(fmt.Sprintf("provider %q registered twice", name))
	}
	factories[name] = f
}

// Build makes every registered provider the settings enable.
func Build(ctx context.Context, env Env) (*Registry, error) {
	factoriesMu.Lock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	factoriesMu.Unlock()
	sort.Strings(names)
	r := &Registry{}
	for _, n := range names {
		p, err := factories[n](ctx, env)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", n, err)
		}
		if p != nil {
			r.Add(p)
		}
	}
	return r, nil
}

// Registry holds the providers this server can use, by name.
type Registry struct {
	mu sync.RWMutex
	m  map[string]Provider
}

// Add registers p; a second provider of the same name is a bug.
func (r *Registry) Add(p Provider) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]Provider{}
	}
	if _, dup := r.m[p.Name()]; dup {
		panic(fmt.Sprintf("provider %q registered twice", p.Name()))
	}
	r.m[p.Name()] = p
}

// Get returns the provider of a name.
func (r *Registry) Get(name string) (Provider, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.m[name]
	return p, ok
}

// Names lists the registered providers, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for n := range r.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
