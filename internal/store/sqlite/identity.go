package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

const identityCols = `workspace, type, name, principal_id, target, description, created_by, created_at, updated_at,
	secrets, secret_keys, version`

func scanIdentity(r rowScanner) (store.Identity, error) {
	var id store.Identity
	var created, updated, keys string
	err := r.Scan(&id.Workspace, &id.Type, &id.Name, &id.PrincipalID, &id.Target, &id.Description, &id.CreatedBy,
		&created, &updated, &id.Secrets, &keys, &id.Version)
	if err != nil {
		return id, err
	}
	id.CreatedAt, id.UpdatedAt = parseTS(created), parseTS(updated)
	return id, json.Unmarshal([]byte(keys), &id.SecretKeys)
}

// CreateIdentity implements store.Store.
func (s *Store) CreateIdentity(ctx context.Context, id store.Identity) error {
	keys, err := json.Marshal(nonNil(id.SecretKeys))
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO identities(`+identityCols+`, name_key) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		id.Workspace, id.Type, id.Name, id.PrincipalID, id.Target, id.Description, id.CreatedBy, ts(id.CreatedAt),
		ts(id.UpdatedAt), id.Secrets, string(keys), id.Version, strings.ToLower(id.Name))
	if isUniqueViolation(err) {
		return api.Conflict("an identity named %q already exists in workspace %q (names are compared case-insensitively)", id.Name, id.Workspace)
	}
	return storageError(err)
}

// GetIdentity implements store.Store.
func (s *Store) GetIdentity(ctx context.Context, workspace, typ, name string) (store.Identity, error) {
	id, err := scanIdentity(s.r.QueryRowContext(ctx, `SELECT `+identityCols+` FROM identities WHERE workspace = ? AND type = ? AND name_key = ?`,
		workspace, typ, strings.ToLower(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return id, api.NotFound("identity %q not found in workspace %q", name, workspace)
	}
	return id, err
}

// ListIdentities implements store.Store.
func (s *Store) ListIdentities(ctx context.Context, workspace string) ([]store.Identity, error) {
	return queryAll(ctx, s.r, `SELECT `+identityCols+` FROM identities WHERE workspace = ? ORDER BY type DESC, name_key`, scanIdentity, workspace)
}

// UpdateIdentity implements store.Store.
func (s *Store) UpdateIdentity(ctx context.Context, id *store.Identity) error {
	keys, err := json.Marshal(nonNil(id.SecretKeys))
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE identities SET principal_id=?, target=?, description=?, updated_at=?, secrets=?,
		secret_keys=?, version=version+1 WHERE workspace=? AND type=? AND name_key=? AND version=?`,
		id.PrincipalID, id.Target, id.Description, ts(id.UpdatedAt), id.Secrets, string(keys),
		id.Workspace, id.Type, strings.ToLower(id.Name), id.Version)
	if err != nil {
		return storageError(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
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
	_, err := s.w.ExecContext(ctx, `DELETE FROM identities WHERE workspace=? AND type=? AND name_key=?`,
		workspace, typ, strings.ToLower(name))
	return err
}

// Policy implements store.Store.
func (s *Store) Policy(ctx context.Context, workspace string) (store.Policy, error) {
	p := store.Policy{Workspace: workspace}
	var updated string
	err := s.r.QueryRowContext(ctx, `SELECT max_idle_seconds, max_run_duration_seconds, updated_by, updated_at
		FROM workspace_policies WHERE workspace = ?`, workspace).Scan(&p.MaxIdleSeconds, &p.MaxRunDurationSeconds, &p.UpdatedBy, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil
	}
	p.UpdatedAt = parseTS(updated)
	return p, err
}

// PutPolicy implements store.Store.
func (s *Store) PutPolicy(ctx context.Context, p store.Policy) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO workspace_policies(workspace, max_idle_seconds, max_run_duration_seconds, updated_by, updated_at)
		VALUES(?, ?, ?, ?, ?) ON CONFLICT(workspace) DO UPDATE SET max_idle_seconds = excluded.max_idle_seconds,
		max_run_duration_seconds = excluded.max_run_duration_seconds, updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
		p.Workspace, p.MaxIdleSeconds, p.MaxRunDurationSeconds, p.UpdatedBy, ts(p.UpdatedAt))
	return storageError(err)
}
