package store

import (
	"context"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// ErrNotLeader is what a write returns on a server that does not lead the
// workspace (or no longer does): it was not applied, and another replica
// may take it. Servers answer it 503 with a header that tells clients to
// try another server.
var ErrNotLeader = api.Unavailable("this server does not lead the workspace now (another replica does, or one is being elected); the request was not applied: retry it")

// Replica is one server of a workspace whose store several servers share.
type Replica struct {
	ID       string    // unique per process: host, pid and start time
	URL      string    // where clients and agents reach it
	Started  time.Time // when it started
	LastSeen time.Time // its last heartbeat (database time)
}

// Elector is implemented by stores that several servers may share
// (PostgreSQL). Exactly one server leads at a time: it holds a lease in the
// database and runs the dispatcher and the controllers; the others
// (followers) serve reads and forward writes to it.
//
// Leadership is fenced: once this server has won a term, the store checks
// the term in the same transaction as every write of run, node and target
// state, users, tokens, roles and quotas (the writes the leader's loops and
// its forwarded requests make), so a server that lost the lease while it
// was paused cannot write after another has won. Writes the store does not
// fence are idempotent or append-only: log lines and metrics (keyed by the
// agent's line numbers), audit entries (chained under a database lock) and
// tokens' last use.
//
// Before Campaign returns a term, and on a server that never campaigns,
// writes are not fenced (a server's bootstrap: the admin, the built-in
// targets). Call Follow once bootstrap is done: fenced writes are then
// refused with ErrNotLeader until the server wins.
type Elector interface {
	// Register announces this server and keeps its heartbeat until ctx ends.
	Register(ctx context.Context, self Replica) error
	// Follow makes fenced writes fail with ErrNotLeader until this server
	// wins a term.
	Follow()
	// Campaign blocks until this server holds the lease (or ctx ends), then
	// fences its writes with the new term and returns it. The lease is
	// renewed until the term ends: the term's Lost channel is closed when
	// it cannot be (another server took over, or the database was out of
	// reach for longer than the lease), and from then on fenced writes fail
	// with ErrNotLeader.
	Campaign(ctx context.Context, self Replica) (Term, error)
	// Leader returns the server that holds the lease now; ok is false
	// while none does.
	Leader(ctx context.Context) (r Replica, epoch int64, ok bool, err error)
	// Replicas lists the servers whose heartbeat is recent, the leader
	// first.
	Replicas(ctx context.Context) ([]Replica, error)
}

// Term is one server's tenure as leader.
type Term interface {
	// Epoch numbers the term; each new leader's is higher.
	Epoch() int64
	// Lost is closed when the term has ended without Resign.
	Lost() <-chan struct{}
	// Resign gives the lease up at once, so another server takes over
	// without waiting for it to expire. Fenced writes fail afterwards.
	Resign(ctx context.Context) error
}

// Changes is implemented by stores that tell a server about changes other
// servers made (PostgreSQL's LISTEN/NOTIFY), so followers' watches wake on
// them instead of polling.
type Changes interface {
	// WatchChanges calls runChanged with the ids of runs whose state, log
	// lines or metrics another server changed, leaderChanged when the
	// lease changed hands, and resync when notifications may have been
	// missed (after a reconnect: treat everything as changed). It returns
	// when ctx ends.
	WatchChanges(ctx context.Context, runChanged func(ids []string), leaderChanged func(), resync func())
}

// Locker is implemented by stores that several servers may share: it runs
// f while holding a database-wide lock of this name, so that servers
// starting together do not bootstrap twice (the secret key, the admin's
// token).
type Locker interface {
	WithLock(ctx context.Context, name string, f func() error) error
}
