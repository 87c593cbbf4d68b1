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
//     are preempted without the server asking).
//
// Methods may be called concurrently for different nodes; calls for one
// node are serialised by the server.
package provider

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/paddock-ml/paddock/internal/sshx"
)

// NodeSpec is what a provider needs to make a node.
type NodeSpec struct {
	ID        string // unique node id, chosen by the server
	Workspace string
	Compute   string // the cluster's name
	Cores     float64
	MemoryGB  float64
	GPUs      int
	// LowPriority nodes may be preempted.
	LowPriority bool
	// HomeDir, when set, is a directory the node uses as HOME for runs and
	// SSH sessions and that outlives the node (a compute instance's home).
	HomeDir string
	// Owner is the Paddock user a compute instance's node belongs to: its
	// home and SSH sessions are that user's.
	Owner string
	// SSHAuthorizedKey, when set, makes the node serve SSH for this OpenSSH
	// public key, with the host key kept in SSHHostKeyFile; a provider that
	// can keeps the endpoint (address and port) beside it, so the next node
	// made with the same file serves at the same place.
	SSHAuthorizedKey string
	SSHHostKeyFile   string
	// SSH is the host to install the node on (ssh and slurm providers).
	SSH *sshx.Target
	// Slurm, when set, starts the agent as a Slurm batch job submitted on
	// the SSH host (a login node) instead of directly.
	Slurm *SlurmJob
	// Token is the node's bearer token; ServerURL where its agent connects.
	Token     string
	ServerURL string
}

// SlurmJob is how to submit a node's pilot job.
type SlurmJob struct {
	Env         string // prefix for Slurm commands, e.g. "SLURM_CONF=/etc/x.conf "
	Partition   string
	Account     string
	QoS         string
	CPUs        int
	MemoryMB    int
	GPUs        int
	TimeMinutes int  // 0: the partition's default
	OneRun      bool // the agent exits after one run (a pilot per run)
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

// Event is something that happened to a node without the server asking.
type Event struct {
	NodeID string
	Kind   string // "preempted" or "gone"
}

// Watcher reports node events as they happen.
type Watcher interface {
	Events() <-chan Event
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
