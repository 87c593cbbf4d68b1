package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u store.User, first store.Token) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO users(name, admin, created_at) VALUES(?, ?, ?)`, u.Name, u.Admin, ts(u.CreatedAt))
		if isUniqueViolation(err) {
			return api.Conflict("a user named %q already exists", u.Name)
		}
		if err != nil {
			return err
		}
		return insertToken(ctx, tx, first)
	})
}

// PutUser implements store.Store.
func (s *Store) PutUser(ctx context.Context, u store.User) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO users(name, admin, created_at) VALUES(?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET admin = excluded.admin`, u.Name, u.Admin, ts(u.CreatedAt))
	return err
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return api.NotFound("no user named %q", name)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE user_name = ?`, name); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM roles WHERE user_name = ?`, name)
		return err
	})
}

const userCols = `name, admin, created_at`

func scanUser(r rowScanner) (store.User, error) {
	var u store.User
	var created string
	err := r.Scan(&u.Name, &u.Admin, &created)
	u.CreatedAt = parseTS(created)
	return u, err
}

// Users implements store.Store.
func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	return queryAll(ctx, s.r, `SELECT `+userCols+` FROM users ORDER BY name`, scanUser)
}

// UserByName implements store.Store.
func (s *Store) UserByName(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return u, api.NotFound("no user named %q", name)
	}
	return u, err
}

const tokenCols = `id, user_name, name, hash, created_at, expires_at, last_used_at, revoked_at`

func scanToken(r rowScanner) (store.Token, error) {
	var t store.Token
	var created string
	var expires, used, revoked sql.NullString
	err := r.Scan(&t.ID, &t.User, &t.Name, &t.Hash, &created, &expires, &used, &revoked)
	t.CreatedAt = parseTS(created)
	t.ExpiresAt, t.LastUsedAt, t.RevokedAt = nullTS(expires), nullTS(used), nullTS(revoked)
	return t, err
}

// nullTS reads an optional timestamp column: zero when NULL.
func nullTS(v sql.NullString) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return parseTS(v.String)
}

// optTS writes an optional timestamp: NULL for the zero time.
func optTS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ts(t)
}

func insertToken(ctx context.Context, tx *sql.Tx, t store.Token) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO tokens(`+tokenCols+`) VALUES(?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.User, t.Name, t.Hash, ts(t.CreatedAt), optTS(t.ExpiresAt), optTS(t.LastUsedAt), optTS(t.RevokedAt))
	if isUniqueViolation(err) {
		return api.Conflict("%s already has a token named %q; revoke it or choose another name", t.User, t.Name)
	}
	return err
}

// CreateToken implements store.Store.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return insertToken(ctx, tx, t) })
}

// RotateToken implements store.Store.
func (s *Store) RotateToken(ctx context.Context, old string, at time.Time, next store.Token) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := revoke(ctx, tx, old, at); err != nil {
			return err
		}
		return insertToken(ctx, tx, next)
	})
}

// TokenByHash implements store.Store.
func (s *Store) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, api.NotFound("no such token")
	}
	return t, err
}

// Tokens implements store.Store.
func (s *Store) Tokens(ctx context.Context, user string) ([]store.Token, error) {
	return queryAll(ctx, s.r, `SELECT `+tokenCols+` FROM tokens WHERE ? = '' OR user_name = ? ORDER BY created_at DESC, id`,
		scanToken, user, user)
}

func revoke(ctx context.Context, tx *sql.Tx, id string, at time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, ts(at), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return api.NotFound("no live token with id %q", id)
	}
	return nil
}

// RevokeToken implements store.Store.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return revoke(ctx, tx, id, at) })
}

// TouchTokens implements store.Store.
func (s *Store) TouchTokens(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for id, at := range used {
			if _, err := tx.ExecContext(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
				ts(at), id, ts(at)); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetRole implements store.Store.
func (s *Store) SetRole(ctx context.Context, workspace, user, role string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO roles(workspace, user_name, role) VALUES(?, ?, ?)
		ON CONFLICT(workspace, user_name) DO UPDATE SET role = excluded.role`, workspace, user, role)
	return err
}

// RoleOf implements store.Store.
func (s *Store) RoleOf(ctx context.Context, workspace, user string) (string, error) {
	var role string
	err := s.r.QueryRowContext(ctx, `SELECT role FROM roles WHERE workspace = ? AND user_name = ?`, workspace, user).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", api.NotFound("%s has no role in workspace %s", user, workspace)
	}
	return role, err
}

// Roles implements store.Store.
func (s *Store) Roles(ctx context.Context, workspace string) (map[string]string, error) {
	type pair struct{ user, role string }
	rows, err := queryAll(ctx, s.r, `SELECT user_name, role FROM roles WHERE workspace = ?`, func(r rowScanner) (pair, error) {
		var p pair
		return p, r.Scan(&p.user, &p.role)
	}, workspace)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, p := range rows {
		out[p.user] = p.role
	}
	return out, nil
}

// DeleteRole implements store.Store.
func (s *Store) DeleteRole(ctx context.Context, workspace, user string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM roles WHERE workspace = ? AND user_name = ?`, workspace, user)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return api.NotFound("%s has no role in workspace %s", user, workspace)
	}
	return nil
}

// inTx runs f in one write transaction, committed when f returns nil.
func (s *Store) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}
