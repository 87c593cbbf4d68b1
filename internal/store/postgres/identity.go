package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

const identityCols = `workspace, type, name, principal_id, target, description, created_by, created_at, updated_at,
	secrets, secret_keys, version`

func scanIdentity(r pgx.Row) (store.Identity, error) {
	var id store.Identity
	var keys string
	err := r.Scan(&id.Workspace, &id.Type, &id.Name, &id.PrincipalID, &id.Target, &id.Description, &id.CreatedBy,
		&id.CreatedAt, &id.UpdatedAt, &id.Secrets, &keys, &id.Version)
	if err != nil {
		return id, err
	}
	id.CreatedAt, id.UpdatedAt = utc(id.CreatedAt), utc(id.UpdatedAt)
	return id, json.Unmarshal([]byte(keys), &id.SecretKeys)
}

// CreateIdentity implements store.Store.
func (s *Store) CreateIdentity(ctx context.Context, id store.Identity) error {
	keys, err := json.Marshal(nonNil(id.SecretKeys))
	if err != nil {
		return err
	}
	err = s.pipeline(ctx, true, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO identities(`+identityCols+`, name_key) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)`,
			id.Workspace, id.Type, id.Name, id.PrincipalID, id.Target, id.Description, id.CreatedBy, id.CreatedAt,
			id.UpdatedAt, id.Secrets, string(keys), id.Version, strings.ToLower(id.Name))
	})
	if isUniqueViolation(err) {
		return api.Conflict("an identity named %q already exists in workspace %q (names are compared case-insensitively)", id.Name, id.Workspace)
	}
	return err
}

// GetIdentity implements store.Store.
func (s *Store) GetIdentity(ctx context.Context, workspace, typ, name string) (store.Identity, error) {
	id, err := scanIdentity(s.pool.QueryRow(ctx, `SELECT `+identityCols+` FROM identities WHERE workspace = $1 AND type = $2 AND name_key = $3`,
		workspace, typ, strings.ToLower(name)))
	if errors.Is(err, pgx.ErrNoRows) {
		return id, api.NotFound("identity %q not found in workspace %q", name, workspace)
	}
	return id, s.check(err)
}

// ListIdentities implements store.Store.
func (s *Store) ListIdentities(ctx context.Context, workspace string) ([]store.Identity, error) {
	return queryAll(ctx, s, `SELECT `+identityCols+` FROM identities WHERE workspace = $1 ORDER BY type DESC, name_key`, scanIdentity, workspace)
}

// UpdateIdentity implements store.Store.
func (s *Store) UpdateIdentity(ctx context.Context, id *store.Identity) error {
	keys, err := json.Marshal(nonNil(id.SecretKeys))
	if err != nil {
		return err
	}
	var n int64
	err = s.pipeline(ctx, true, func(b *pgx.Batch) {
		b.Queue(`UPDATE identities SET principal_id=$1, target=$2, description=$3, updated_at=$4, secrets=$5,
			secret_keys=$6, version=version+1 WHERE workspace=$7 AND type=$8 AND name_key=$9 AND version=$10`,
			id.PrincipalID, id.Target, id.Description, id.UpdatedAt, id.Secrets, string(keys),
			id.Workspace, id.Type, strings.ToLower(id.Name), id.Version).Exec(func(ct pgconn.CommandTag) error {
			n = ct.RowsAffected()
			return nil
		})
	})
	if err != nil {
		return err
	}
	if n == 0 {
		if _, err := s.GetIdentity(ctx, id.Workspace, id.Type, id.Name); err != nil {
			return err
		}
		return api.Conflict("identity %q was changed by someone else; retry", id.Name)
	}
	id.Version++
	return nil
}

// DeleteIdentity implements store.Store.
func (s *Store) DeleteIdentity(ctx context.Context, workspace, typ, name string) error {
	return s.pipeline(ctx, true, func(b *pgx.Batch) {
		b.Queue(`DELETE FROM identities WHERE workspace=$1 AND type=$2 AND name_key=$3`, workspace, typ, strings.ToLower(name))
	})
}

// Policy implements store.Store.
func (s *Store) Policy(ctx context.Context, workspace string) (store.Policy, error) {
	p := store.Policy{Workspace: workspace}
	err := s.pool.QueryRow(ctx, `SELECT max_idle_seconds, max_run_duration_seconds, updated_by, updated_at
		FROM workspace_policies WHERE workspace = $1`, workspace).Scan(&p.MaxIdleSeconds, &p.MaxRunDurationSeconds, &p.UpdatedBy, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil
	}
	p.UpdatedAt = utc(p.UpdatedAt)
	return p, s.check(err)
}

// PutPolicy implements store.Store.
func (s *Store) PutPolicy(ctx context.Context, p store.Policy) error {
	return s.pipeline(ctx, true, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO workspace_policies(workspace, max_idle_seconds, max_run_duration_seconds, updated_by, updated_at)
			VALUES($1, $2, $3, $4, $5) ON CONFLICT(workspace) DO UPDATE SET max_idle_seconds = excluded.max_idle_seconds,
			max_run_duration_seconds = excluded.max_run_duration_seconds, updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
			p.Workspace, p.MaxIdleSeconds, p.MaxRunDurationSeconds, p.UpdatedBy, p.UpdatedAt)
	})
}
