package postgres

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

const envCols = `workspace, name, version, data, created_by, created_at`

func scanEnvironment(r pgx.Row) (store.Environment, error) {
	var e store.Environment
	var data string
	if err := r.Scan(&e.Workspace, &e.Name, &e.Version, &data, &e.CreatedBy, &e.CreatedAt); err != nil {
		return e, err
	}
	e.CreatedAt = utc(e.CreatedAt)
	err := e.SetData([]byte(data))
	return e, err
}

// RegisterEnvironment implements store.Store.
func (s *Store) RegisterEnvironment(ctx context.Context, e store.Environment) (store.Environment, bool, error) {
	data, err := e.Data()
	if err != nil {
		return store.Environment{}, false, err
	}
	created := false
	err = s.inTx(ctx, true, func(tx pgx.Tx) error {
		// One registration of a name at a time: the next version number.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, s.lockSpace+lockEnvironments,
			e.Workspace+"/"+strings.ToLower(e.Name)); err != nil {
			return err
		}
		latest, err := scanEnvironment(tx.QueryRow(ctx, `SELECT `+envCols+` FROM environments
			WHERE workspace = $1 AND name_key = $2 ORDER BY version DESC LIMIT 1`, e.Workspace, strings.ToLower(e.Name)))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			e.Version = 1
		case err != nil:
			return err
		default:
			if old, err := latest.Data(); err == nil && bytes.Equal(old, data) {
				e = latest
				return nil
			}
			e.Version = latest.Version + 1
			e.Name = latest.Name // a name keeps the spelling it was first registered with
		}
		created = true
		_, err = tx.Exec(ctx, `INSERT INTO environments(workspace, name_key, version, name, data, created_by, created_at)
			VALUES($1,$2,$3,$4,$5,$6,$7)`, e.Workspace, strings.ToLower(e.Name), e.Version, e.Name, string(data), e.CreatedBy, e.CreatedAt)
		return err
	})
	if err != nil {
		return store.Environment{}, false, err
	}
	return e, created, nil
}

// GetEnvironment implements store.Store.
func (s *Store) GetEnvironment(ctx context.Context, workspace, name string, version int) (store.Environment, error) {
	q := `SELECT ` + envCols + ` FROM environments WHERE workspace = $1 AND name_key = $2`
	args := []any{workspace, strings.ToLower(name)}
	if version > 0 {
		q += ` AND version = $3`
		args = append(args, version)
	}
	e, err := scanEnvironment(s.pool.QueryRow(ctx, q+` ORDER BY version DESC LIMIT 1`, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		if version > 0 {
			return e, api.NotFound("environment %q has no version %d in workspace %q", name, version, workspace)
		}
		return e, api.NotFound("environment %q is not registered in workspace %q", name, workspace)
	}
	return e, s.check(err)
}

// ListEnvironments implements store.Store.
func (s *Store) ListEnvironments(ctx context.Context, workspace string) ([]store.Environment, error) {
	return queryAll(ctx, s, `SELECT DISTINCT ON (name_key) `+envCols+` FROM environments WHERE workspace = $1
		ORDER BY name_key, version DESC`, scanEnvironment, workspace)
}
