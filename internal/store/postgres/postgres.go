// Package postgres is the Store on PostgreSQL, for a workspace that must
// outlive its server's host: several servers (replicas) share one
// database, one of them leads (lease.go), the others follow and are told
// of changes by LISTEN/NOTIFY (notify.go). It uses pgx (pure Go), so the
// binary still builds with CGO_ENABLED=0.
//
// The files mirror store/sqlite's: this one holds workspaces, compute
// targets and quotas and the plumbing; run.go runs, logs, metrics and
// nodes; users.go users, tokens and roles; audit.go the audit log;
// copy.go the table-by-table copy used by `paddock store copy`.
//
// Writes are sent as one pipeline where they can (one round trip, one
// implicit transaction: see pipeline); the fenced ones start with the
// lease check (fence.go).
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	pool  *pgxpool.Pool
	cfg   *pgxpool.Config
	log   *slog.Logger
	opts  Options
	fence fence
	// schema is the schema the tables are in (the connection's
	// search_path); lockSpace and the channel names are derived from it,
	// so that workspaces sharing one database in different schemas do not
	// share locks or notifications.
	schema    string
	lockSpace int32
	chRuns    string // NOTIFY channel: ids of runs that changed
	chLeader  string // NOTIFY channel: the lease changed hands
	origin    string // names this store's notifications
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Elector = (*Store)(nil)
	_ store.Changes = (*Store)(nil)
	_ store.Locker  = (*Store)(nil)
)

// Options tune the store; the zero value is what a server uses.
type Options struct {
	// LeaseTTL is how long the leader's lease lasts without renewal: the
	// longest a paused or cut-off leader holds up a takeover (default 5 s).
	// A leader whose process died is replaced sooner (lease.go).
	LeaseTTL time.Duration
	// RenewEvery is how often the leader renews (default LeaseTTL/5).
	RenewEvery time.Duration
	// CampaignEvery is how often a follower checks the lease (default
	// 250 ms).
	CampaignEvery time.Duration
	Log           *slog.Logger
}

// IsDSN reports whether s names a PostgreSQL database.
func IsDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Open connects to the database named by dsn (postgres://user:pass@host/db?…;
// pool_max_conns and the other pgx settings may be given in it) and applies
// every pending migration.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, api.Invalid("store", "the PostgreSQL URL is not valid: %v", redact(err))
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = 20
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "paddock"
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 5 * time.Second
	}
	if o.RenewEvery <= 0 {
		o.RenewEvery = o.LeaseTTL / 5
	}
	if o.CampaignEvery <= 0 {
		o.CampaignEvery = 250 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, unavailable(err)
	}
	s := &Store{pool: pool, cfg: cfg, log: o.Log, opts: o, origin: rand.Text()[:12]}
	s.fence.init()
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&s.schema); err != nil {
		pool.Close()
		return nil, unavailable(err)
	}
	h := fnv.New32a()
	h.Write([]byte(s.schema))
	s.lockSpace = int32(h.Sum32())
	s.chRuns, s.chLeader = "paddock_runs", "paddock_leader"
	if s.schema != "public" {
		s.chRuns += ":" + s.schema
		s.chLeader += ":" + s.schema
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrating the PostgreSQL store: %w", err)
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// redact keeps a password out of an error about a DSN.
func redact(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		if j := strings.Index(msg[i:], "@"); j >= 0 {
			if k := strings.Index(msg[i+3:i+j], ":"); k >= 0 {
				msg = msg[:i+3+k+1] + "xxxxx" + msg[i+j:]
			}
		}
	}
	return msg
}

// Lock ids (the first half of PostgreSQL's two-key advisory locks is the
// schema's lockSpace).
const (
	lockMigrate   = 1
	lockBootstrap = 2
	lockAudit     = 3
	lockLeader    = 4 // with the epoch as the second key: see lease.go
	// lockEnvironments, with a hash of the workspace and name, orders the
	// registrations of one environment's versions.
	lockEnvironments = 5
)

// SchemaVersion reports the highest migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version),0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// migrate applies pending migrations, one server at a time.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return unavailable(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, 0)`, s.lockSpace+lockMigrate); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, 0)`, s.lockSpace+lockMigrate)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, applied_at timestamptz NOT NULL)`); err != nil {
		return err
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version),0) FROM schema_migrations`).Scan(&current); err != nil {
		return err
	}
	if current > len(migrations) {
		return fmt.Errorf("the database is at schema version %d but this paddock knows only %d; run a newer paddock", current, len(migrations))
	}
	for i := current; i < len(migrations); i++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES($1, now())`, i+1)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// errDBUnavailable is what calls return while the database cannot be
// reached.
var errDBUnavailable = api.Unavailable("the server cannot reach its PostgreSQL database; retry shortly")

// errDiskFull is what writes return when the database's disk is full.
var errDiskFull = api.InsufficientStorage("the PostgreSQL database's disk is full: it cannot store more until space is freed")

// unavailable turns a connection failure into errDBUnavailable, keeping
// the cause for the log.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%w (%v)", errDBUnavailable, redact(err))
	}
	return err
}

// pgCode is the SQLSTATE of a PostgreSQL error, "" for other errors.
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func isUniqueViolation(err error) bool { return pgCode(err) == "23505" }

// check maps what the database said to what callers act on: a lost
// lease, a full disk, an unreachable database.
func (s *Store) check(err error) error {
	switch pgCode(err) {
	case "":
		return unavailable(err)
	case codeFenced:
		s.fence.lose()
		return fmt.Errorf("%w (%v)", store.ErrNotLeader, err)
	case "53100": // disk_full
		return fmt.Errorf("%w (%v)", errDiskFull, err)
	}
	return err
}

// pipeline sends the statements queue adds as one batch: one round trip,
// run by the server as one implicit transaction (all or nothing). A fenced
// write starts with the lease check. Callbacks set on the queued
// statements run as their results arrive, but cannot undo what the batch
// did: writes whose later statements depend on earlier results use inTx.
func (s *Store) pipeline(ctx context.Context, fenced bool, queue func(b *pgx.Batch)) error {
	b := &pgx.Batch{}
	if fenced {
		epoch, err := s.fence.epoch()
		if err != nil {
			return err
		}
		if epoch > 0 {
			b.Queue(`SELECT paddock_fence($1)`, epoch)
		}
	}
	queue(b)
	if b.Len() == 0 {
		return nil
	}
	return s.check(s.pool.SendBatch(ctx, b).Close())
}

// inTx runs f in one transaction, committed when f returns nil, fenced
// when asked.
func (s *Store) inTx(ctx context.Context, fenced bool, f func(tx pgx.Tx) error) error {
	var epoch int64
	if fenced {
		var err error
		if epoch, err = s.fence.epoch(); err != nil {
			return err
		}
	}
	return s.check(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if epoch > 0 {
			if _, err := tx.Exec(ctx, `SELECT paddock_fence($1)`, epoch); err != nil {
				return err
			}
		}
		return f(tx)
	}))
}

// queryAll runs a query and returns every row it gives, each made by scan.
func queryAll[T any](ctx context.Context, s *Store, query string, scan func(pgx.Row) (T, error), args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, s.check(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, s.check(rows.Err())
}

// utc reads a time as UTC (pgx gives local times).
func utc(t time.Time) time.Time { return t.UTC() }

// nullTime writes an optional time: NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// fromNull reads an optional time: zero when NULL.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// clean makes text storable: PostgreSQL text cannot hold NUL bytes, which
// a run's output may; they become U+FFFD.
func clean(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// EnsureWorkspace implements store.Store.
func (s *Store) EnsureWorkspace(ctx context.Context, name string) error {
	return s.pipeline(ctx, true, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO workspaces(name, created_at) VALUES($1, now()) ON CONFLICT DO NOTHING`, name)
	})
}

// WorkspaceExists implements store.Store.
func (s *Store) WorkspaceExists(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS(SELECT 1 FROM workspaces WHERE name = $1)`, name).Scan(&ok)
	return ok, s.check(err)
}

const computeCols = `workspace, name, type, state, errors, created_by, created_at, updated_at,
	properties, secrets, secrets_set, status, version`

func scanCompute(r pgx.Row) (store.Compute, error) {
	var c store.Compute
	var state, errs, props, set, status string
	err := r.Scan(&c.Workspace, &c.Name, &c.Type, &state, &errs, &c.CreatedBy, &c.CreatedAt, &c.UpdatedAt,
		&props, &c.Secrets, &set, &status, &c.Version)
	if err != nil {
		return c, err
	}
	c.State = api.ProvisioningState(state)
	c.CreatedAt, c.UpdatedAt = utc(c.CreatedAt), utc(c.UpdatedAt)
	c.Properties, c.Status = json.RawMessage(props), json.RawMessage(status)
	if err := json.Unmarshal([]byte(errs), &c.Errors); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(set), &c.SecretsSet); err != nil {
		return c, err
	}
	return c, nil
}

// computeArgs are a target's columns in computeCols order.
func computeArgs(c *store.Compute) ([]any, error) {
	errs, err := json.Marshal(nonNil(c.Errors))
	if err != nil {
		return nil, err
	}
	set, err := json.Marshal(nonNil(c.SecretsSet))
	if err != nil {
		return nil, err
	}
	props, status := string(c.Properties), string(c.Status)
	if props == "" {
		props = "{}"
	}
	if status == "" {
		status = "{}"
	}
	return []any{c.Workspace, c.Name, c.Type, string(c.State), string(errs), c.CreatedBy, c.CreatedAt,
		c.UpdatedAt, props, c.Secrets, string(set), status, c.Version}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// CreateCompute implements store.Store.
func (s *Store) CreateCompute(ctx context.Context, c store.Compute) error {
	args, err := computeArgs(&c)
	if err != nil {
		return err
	}
	err = s.pipeline(ctx, true, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO computes(`+computeCols+`, name_key) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)`,
			append(args, strings.ToLower(c.Name))...)
	})
	if isUniqueViolation(err) {
		return api.Conflict("a compute target named %q already exists in workspace %q (names are compared case-insensitively)", c.Name, c.Workspace)
	}
	return err
}

// GetCompute implements store.Store.
func (s *Store) GetCompute(ctx context.Context, workspace, name string) (store.Compute, error) {
	c, err := scanCompute(s.pool.QueryRow(ctx, `SELECT `+computeCols+` FROM computes WHERE workspace = $1 AND name_key = $2`,
		workspace, strings.ToLower(name)))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, api.NotFound("compute target %q not found in workspace %q", name, workspace)
	}
	return c, s.check(err)
}

// ListComputes implements store.Store.
func (s *Store) ListComputes(ctx context.Context, workspace string) ([]store.Compute, error) {
	return queryAll(ctx, s, `SELECT `+computeCols+` FROM computes WHERE workspace = $1 ORDER BY workspace, name_key`, scanCompute, workspace)
}

// ListComputesInStates implements store.Store.
func (s *Store) ListComputesInStates(ctx context.Context, states ...api.ProvisioningState) ([]store.Compute, error) {
	if len(states) == 0 {
		return nil, nil
	}
	names := make([]string, len(states))
	for i, st := range states {
		names[i] = string(st)
	}
	return queryAll(ctx, s, `SELECT `+computeCols+` FROM computes WHERE state = ANY($1) ORDER BY workspace, name_key`, scanCompute, names)
}

// UpdateCompute implements store.Store.
func (s *Store) UpdateCompute(ctx context.Context, c *store.Compute) error {
	next := *c
	next.Version++
	args, err := computeArgs(&next)
	if err != nil {
		return err
	}
	var n int64
	// args: workspace, name, type, state, errors, created_by, created_at, updated_at, properties, secrets, secrets_set, status, version
	err = s.pipeline(ctx, true, func(b *pgx.Batch) {
		b.Queue(`UPDATE computes SET state=$1, errors=$2, updated_at=$3, properties=$4, secrets=$5,
			secrets_set=$6, status=$7, version=$8 WHERE workspace=$9 AND name_key=$10 AND version=$11`,
			args[3], args[4], args[7], args[8], args[9], args[10], args[11], args[12],
			c.Workspace, strings.ToLower(c.Name), c.Version).Exec(func(ct pgconn.CommandTag) error {
			n = ct.RowsAffected()
			return nil
		})
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return api.Conflict("compute target %q was changed by someone else; retry", c.Name)
	}
	c.Version = next.Version
	return nil
}

// DeleteCompute implements store.Store.
func (s *Store) DeleteCompute(ctx context.Context, workspace, name string, version int64) error {
	var n int64
	err := s.pipeline(ctx, true, func(b *pgx.Batch) {
		b.Queue(`DELETE FROM computes WHERE workspace=$1 AND name_key=$2 AND version=$3`,
			workspace, strings.ToLower(name), version).Exec(func(ct pgconn.CommandTag) error {
			n = ct.RowsAffected()
			return nil
		})
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return api.Conflict("compute target %q was changed by someone else; retry", name)
	}
	return nil
}

// Quotas implements store.Store.
func (s *Store) Quotas(ctx context.Context, workspace string) ([]store.Quota, error) {
	return queryAll(ctx, s, `SELECT family, dedicated_cores, lowpriority_cores FROM quotas
		WHERE workspace = $1 ORDER BY family`, func(r pgx.Row) (store.Quota, error) {
		q := store.Quota{Workspace: workspace}
		err := r.Scan(&q.Family, &q.DedicatedCores, &q.LowPriorityCores)
		return q, err
	}, workspace)
}

// PutQuota implements store.Store.
func (s *Store) PutQuota(ctx context.Context, q store.Quota) error {
	return s.pipeline(ctx, true, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO quotas(workspace, family, dedicated_cores, lowpriority_cores) VALUES($1,$2,$3,$4)
			ON CONFLICT(workspace, family) DO UPDATE SET dedicated_cores = excluded.dedicated_cores,
			lowpriority_cores = excluded.lowpriority_cores`, q.Workspace, q.Family, q.DedicatedCores, q.LowPriorityCores)
	})
}
