package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

const envCols = `workspace, name, version, data, created_by, created_at`

func scanEnvironment(r rowScanner) (store.Environment, error) {
	var e store.Environment
	var data, at string
	if err := r.Scan(&e.Workspace, &e.Name, &e.Version, &data, &e.CreatedBy, &at); err != nil {
		return e, err
	}
	e.CreatedAt = parseTS(at)
	err := e.SetData([]byte(data))
	return e, err
}

// RegisterEnvironment implements store.Store.
func (s *Store) RegisterEnvironment(ctx context.Context, e store.Environment) (store.Environment, bool, error) {
	if s.reserve.short() {
		return store.Environment{}, false, errDiskFull
	}
	out, created, err := s.registerEnvironment(ctx, e)
	return out, created, storageError(err)
}

func (s *Store) registerEnvironment(ctx context.Context, e store.Environment) (store.Environment, bool, error) {
	data, err := e.Data()
	if err != nil {
		return store.Environment{}, false, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Environment{}, false, err
	}
	defer tx.Rollback()
	latest, err := scanEnvironment(tx.QueryRowContext(ctx, `SELECT `+envCols+` FROM environments
		WHERE workspace = ? AND name_key = ? ORDER BY version DESC LIMIT 1`, e.Workspace, strings.ToLower(e.Name)))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		e.Version = 1
	case err != nil:
		return store.Environment{}, false, err
	default:
		if old, err := latest.Data(); err == nil && bytes.Equal(old, data) {
			return latest, false, nil
		}
		e.Version = latest.Version + 1
		e.Name = latest.Name // a name keeps the spelling it was first registered with
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO environments(workspace, name_key, version, name, data, created_by, created_at)
		VALUES(?,?,?,?,?,?,?)`, e.Workspace, strings.ToLower(e.Name), e.Version, e.Name, string(data), e.CreatedBy, ts(e.CreatedAt)); err != nil {
		return store.Environment{}, false, err
	}
	return e, true, tx.Commit()
}

// GetEnvironment implements store.Store.
func (s *Store) GetEnvironment(ctx context.Context, workspace, name string, version int) (store.Environment, error) {
	q := `SELECT ` + envCols + ` FROM environments WHERE workspace = ? AND name_key = ?`
	args := []any{workspace, strings.ToLower(name)}
	if version > 0 {
		q += ` AND version = ?`
		args = append(args, version)
	}
	e, err := scanEnvironment(s.r.QueryRowContext(ctx, q+` ORDER BY version DESC LIMIT 1`, args...))
	if errors.Is(err, sql.ErrNoRows) {
		if version > 0 {
			return e, api.NotFound("environment %q has no version %d in workspace %q", name, version, workspace)
		}
		return e, api.NotFound("environment %q is not registered in workspace %q", name, workspace)
	}
	return e, err
}

// ListEnvironments implements store.Store.
func (s *Store) ListEnvironments(ctx context.Context, workspace string) ([]store.Environment, error) {
	return queryAll(ctx, s.r, `SELECT `+envCols+` FROM environments e WHERE workspace = ?
		AND version = (SELECT MAX(version) FROM environments x WHERE x.workspace = e.workspace AND x.name_key = e.name_key)
		ORDER BY name_key`, scanEnvironment, workspace)
}
