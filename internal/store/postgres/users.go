package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u store.User, first store.Token) error {
	return s.inTx(ctx, true, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO users(name, admin, created_at) VALUES($1, $2, $3)`, u.Name, u.Admin, u.CreatedAt)
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
	return s.pipeline(ctx, true, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO users(name, admin, created_at) VALUES($1, $2, $3)
			ON CONFLICT(name) DO UPDATE SET admin = excluded.admin`, u.Name, u.Admin, u.CreatedAt)
	})
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.inTx(ctx, true, func(tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, `DELETE FROM users WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if ct.RowsAffected() == 0 {
			return api.NotFound("no user named %q", name)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE user_name = $1`, name); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM roles WHERE user_name = $1`, name)
		return err
	})
}

const userCols = `name, admin, created_at`

func scanUser(r pgx.Row) (store.User, error) {
	var u store.User
	err := r.Scan(&u.Name, &u.Admin, &u.CreatedAt)
	u.CreatedAt = utc(u.CreatedAt)
	return u, err
}

// Users implements store.Store.
func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	return queryAll(ctx, s, `SELECT `+userCols+` FROM users ORDER BY name`, scanUser)
}

// UserByName implements store.Store.
func (s *Store) UserByName(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, api.NotFound("no user named %q", name)
	}
	return u, s.check(err)
}

const tokenCols = `id, user_name, name, hash, created_at, expires_at, last_used_at, revoked_at`

func scanToken(r pgx.Row) (store.Token, error) {
	var t store.Token
	var expires, used, revoked *time.Time
	err := r.Scan(&t.ID, &t.User, &t.Name, &t.Hash, &t.CreatedAt, &expires, &used, &revoked)
	t.CreatedAt = utc(t.CreatedAt)
	t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromNull(expires), fromNull(used), fromNull(revoked)
	return t, err
}

func insertToken(ctx context.Context, tx pgx.Tx, t store.Token) error {
	_, err := tx.Exec(ctx, `INSERT INTO tokens(`+tokenCols+`) VALUES($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.ID, t.User, t.Name, t.Hash, t.CreatedAt, nullTime(t.ExpiresAt), nullTime(t.LastUsedAt), nullTime(t.RevokedAt))
	if isUniqueViolation(err) {
		return api.Conflict("%s already has a token named %q; revoke it or choose another name", t.User, t.Name)
	}
	return err
}

// CreateToken implements store.Store.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	return s.inTx(ctx, true, func(tx pgx.Tx) error { return insertToken(ctx, tx, t) })
}

// RotateToken implements store.Store.
func (s *Store) RotateToken(ctx context.Context, old string, at time.Time, next store.Token) error {
	return s.inTx(ctx, true, func(tx pgx.Tx) error {
		if err := revoke(ctx, tx, old, at); err != nil {
			return err
		}
		return insertToken(ctx, tx, next)
	})
}

// TokenByHash implements store.Store.
func (s *Store) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, api.NotFound("no such token")
	}
	return t, s.check(err)
}

// Tokens implements store.Store.
func (s *Store) Tokens(ctx context.Context, user string) ([]store.Token, error) {
	return queryAll(ctx, s, `SELECT `+tokenCols+` FROM tokens WHERE $1 = '' OR user_name = $1 ORDER BY created_at DESC, id`,
		scanToken, user)
}

func revoke(ctx context.Context, tx pgx.Tx, id string, at time.Time) error {
	ct, err := tx.Exec(ctx, `UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, at, id)
	if err != nil {
		return err
	}
	if ct.RowsAffected() == 0 {
		return api.NotFound("no live token with id %q", id)
	}
	return nil
}

// RevokeToken implements store.Store.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return s.inTx(ctx, true, func(tx pgx.Tx) error { return revoke(ctx, tx, id, at) })
}

// TouchTokens implements store.Store. Not fenced: any server records the
// use of the tokens it authenticated, and a later time never goes back.
func (s *Store) TouchTokens(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids, ats := make([]string, 0, len(used)), make([]time.Time, 0, len(used))
	for id, at := range used {
		ids, ats = append(ids, id), append(ats, at)
	}
	return s.pipeline(ctx, false, func(b *pgx.Batch) {
		b.Queue(`UPDATE tokens t SET last_used_at = u.at FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
			WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at < u.at)`, ids, ats)
	})
}

// SetRole implements store.Store.
func (s *Store) SetRole(ctx context.Context, workspace, user, role string) error {
	return s.pipeline(ctx, true, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO roles(workspace, user_name, role) VALUES($1, $2, $3)
			ON CONFLICT(workspace, user_name) DO UPDATE SET role = excluded.role`, workspace, user, role)
	})
}

// RoleOf implements store.Store.
func (s *Store) RoleOf(ctx context.Context, workspace, user string) (string, error) {
	var role string
	err := s.pool.QueryRow(ctx, `SELECT role FROM roles WHERE workspace = $1 AND user_name = $2`, workspace, user).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", api.NotFound("%s has no role in workspace %s", user, workspace)
	}
	return role, s.check(err)
}

// Roles implements store.Store.
func (s *Store) Roles(ctx context.Context, workspace string) (map[string]string, error) {
	type pair struct{ user, role string }
	rows, err := queryAll(ctx, s, `SELECT user_name, role FROM roles WHERE workspace = $1`, func(r pgx.Row) (pair, error) {
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
	var n int64
	err := s.pipeline(ctx, true, func(b *pgx.Batch) {
		b.Queue(`DELETE FROM roles WHERE workspace = $1 AND user_name = $2`, workspace, user).Exec(func(ct pgconn.CommandTag) error {
			n = ct.RowsAffected()
			return nil
		})
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return api.NotFound("%s has no role in workspace %s", user, workspace)
	}
	return nil
}
