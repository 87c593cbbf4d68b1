// Package sqlite is the embedded Store: one SQLite file in WAL mode through
// the pure-Go modernc.org/sqlite driver, so the binary builds with
// CGO_ENABLED=0. All writes go through one connection (SQLite has one
// writer anyway); reads use a small pool that WAL lets run beside it.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"

	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is the SQLite implementation of store.Store.
type Store struct {
	w       *sql.DB   // the single writer
	r       *readerDB // readers, with prepared statements
	reserve *reserve  // disk space for state writes when the disk is full
	// workspaces seen to exist: workspaces are never deleted, so every
	// request need not read the table to learn it again.
	workspaces sync.Map
}

var _ store.Store = (*Store)(nil)

// readers is the size of the reader pool.
const readers = 4

// Open opens (creating if needed) the database at path and applies every
// pending migration.
func Open(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, err
	}
	// Keep every reader open: database/sql keeps 2 idle by default, and
	// under 16 concurrent readers the other 2 were closed and reopened on
	// every burst, each reopen parsing the schema and re-preparing every
	// cached statement (a quarter of the server's CPU during API reads).
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	s := &Store{w: w, r: newReaderDB(r), reserve: &reserve{path: path + ".reserve"}}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrating %s: %w", path, err)
	}
	s.reserve.hold()
	return s, nil
}

// Close closes both pools; SQLite checkpoints the WAL on the last close.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// SchemaVersion reports the highest migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version),0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return err
	}
	current, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if current > len(migrations) {
		return fmt.Errorf("the database is at schema version %d but this paddock knows only %d; run a newer paddock", current, len(migrations))
	}
	for i := current; i < len(migrations); i++ {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES(?, ?)`,
			i+1, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

const tsLayout = time.RFC3339Nano

func ts(t time.Time) string { return t.UTC().Format(tsLayout) }

func parseTS(s string) time.Time {
	t, _ := time.Parse(tsLayout, s)
	return t
}

// errDiskFull is what writes return when the disk is full (HTTP 507).
var errDiskFull = api.InsufficientStorage("the server's disk is full: it cannot store more until space is freed in its data dir")

// storageError turns "the disk is full" into errDiskFull, keeping
// SQLite's message for the log.
func storageError(err error) error {
	var se *sqlite.Error
	full := errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
	if !full || errors.Is(err, api.ErrInsufficientStorage) {
		return err
	}
	return fmt.Errorf("%w (%v)", errDiskFull, err)
}

func isUniqueViolation(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// EnsureWorkspace implements store.Store.
func (s *Store) EnsureWorkspace(ctx context.Context, name string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO workspaces(name, created_at) VALUES(?, ?) ON CONFLICT DO NOTHING`,
		name, ts(time.Now()))
	return err
}

// WorkspaceExists implements store.Store.
func (s *Store) WorkspaceExists(ctx context.Context, name string) (bool, error) {
	if _, ok := s.workspaces.Load(name); ok {
		return true, nil
	}
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM workspaces WHERE name = ?`, name).Scan(&n)
	if n > 0 {
		s.workspaces.Store(name, struct{}{})
	}
	return n > 0, err
}

const computeCols = `workspace, name, type, state, errors, created_by, created_at, updated_at,
	properties, secrets, secrets_set, status, version`

// rowScanner is a row to scan: *sql.Row (one row) or *sql.Rows (each
// row of a query).
type rowScanner interface{ Scan(dest ...any) error }

// queryAll runs a query on the readers and returns every row it gives,
// each made by scan.
func queryAll[T any](ctx context.Context, db *readerDB, query string, scan func(rowScanner) (T, error), args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
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
	return out, rows.Err()
}

func scanCompute(r rowScanner) (store.Compute, error) {
	var c store.Compute
	var state, errs, created, updated, props, set, status string
	err := r.Scan(&c.Workspace, &c.Name, &c.Type, &state, &errs, &c.CreatedBy, &created, &updated,
		&props, &c.Secrets, &set, &status, &c.Version)
	if err != nil {
		return c, err
	}
	c.State = api.ProvisioningState(state)
	c.CreatedAt, c.UpdatedAt = parseTS(created), parseTS(updated)
	c.Properties, c.Status = json.RawMessage(props), json.RawMessage(status)
	if err := json.Unmarshal([]byte(errs), &c.Errors); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(set), &c.SecretsSet); err != nil {
		return c, err
	}
	return c, nil
}

func computeArgs(c *store.Compute) ([]any, error) {
	errs, err := json.Marshal(nonNil(c.Errors))
	if err != nil {
		return nil, err
	}
	set, err := json.Marshal(nonNil(c.SecretsSet))
	if err != nil {
		return nil, err
	}
	return []any{c.Workspace, c.Name, c.Type, string(c.State), string(errs), c.CreatedBy, ts(c.CreatedAt),
		ts(c.UpdatedAt), string(c.Properties), c.Secrets, string(set), string(c.Status), c.Version}, nil
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
	_, err = s.w.ExecContext(ctx, `INSERT INTO computes(`+computeCols+`, name_key) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		append(args, strings.ToLower(c.Name))...)
	if isUniqueViolation(err) {
		return api.Conflict("a compute target named %q already exists in workspace %q (names are compared case-insensitively)", c.Name, c.Workspace)
	}
	return err
}

// GetCompute implements store.Store.
func (s *Store) GetCompute(ctx context.Context, workspace, name string) (store.Compute, error) {
	c, err := scanCompute(s.r.QueryRowContext(ctx, `SELECT `+computeCols+` FROM computes WHERE workspace = ? AND name_key = ?`,
		workspace, strings.ToLower(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return c, api.NotFound("compute target %q not found in workspace %q", name, workspace)
	}
	return c, err
}

func (s *Store) listComputes(ctx context.Context, where string, args ...any) ([]store.Compute, error) {
	return queryAll(ctx, s.r, `SELECT `+computeCols+` FROM computes WHERE `+where+` ORDER BY workspace, name_key`, scanCompute, args...)
}

// ListComputes implements store.Store.
func (s *Store) ListComputes(ctx context.Context, workspace string) ([]store.Compute, error) {
	return s.listComputes(ctx, "workspace = ?", workspace)
}

// ListComputesInStates implements store.Store.
func (s *Store) ListComputesInStates(ctx context.Context, states ...api.ProvisioningState) ([]store.Compute, error) {
	if len(states) == 0 {
		return nil, nil
	}
	args := make([]any, len(states))
	for i, st := range states {
		args[i] = string(st)
	}
	return s.listComputes(ctx, "state IN (?"+strings.Repeat(",?", len(states)-1)+")", args...)
}

// UpdateCompute implements store.Store.
func (s *Store) UpdateCompute(ctx context.Context, c *store.Compute) error {
	next := *c
	next.Version++
	args, err := computeArgs(&next)
	if err != nil {
		return err
	}
	// args: workspace, name, type, state, errors, created_by, created_at, updated_at, properties, secrets, secrets_set, status, version
	res, err := s.w.ExecContext(ctx, `UPDATE computes SET state=?, errors=?, updated_at=?, properties=?, secrets=?,
		secrets_set=?, status=?, version=? WHERE workspace=? AND name_key=? AND version=?`,
		args[3], args[4], args[7], args[8], args[9], args[10], args[11], args[12],
		c.Workspace, strings.ToLower(c.Name), c.Version)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return api.Conflict("compute target %q was changed by someone else; retry", c.Name)
	}
	c.Version = next.Version
	return nil
}

// DeleteCompute implements store.Store.
func (s *Store) DeleteCompute(ctx context.Context, workspace, name string, version int64) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM computes WHERE workspace=? AND name_key=? AND version=?`,
		workspace, strings.ToLower(name), version)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return api.Conflict("compute target %q was changed by someone else; retry", name)
	}
	return nil
}
