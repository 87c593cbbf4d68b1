package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/internal/store"
)

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, entries []store.AuditEntry, seal func(*store.AuditEntry)) error {
	return s.reserve.critical(func() error {
		return s.inTx(ctx, func(tx *sql.Tx) error {
			var seq int64
			var prev string
			err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			for i := range entries {
				e := &entries[i]
				seq++
				e.Seq, e.PrevHash = seq, prev
				seal(e)
				if _, err := tx.ExecContext(ctx, `INSERT INTO audit(seq, at, workspace, user_name, token_id, action, target, source, outcome, status, message, prev_hash, hash)
					VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.Seq, auditTS(e.At), e.Workspace, e.User, e.TokenID, e.Action, e.Target,
					e.Source, e.Outcome, e.Status, e.Message, e.PrevHash, e.Hash); err != nil {
					return err
				}
				prev = e.Hash
			}
			return nil
		})
	})
}

func scanAudit(r rowScanner) (store.AuditEntry, error) {
	var e store.AuditEntry
	var at string
	err := r.Scan(&e.Seq, &at, &e.Workspace, &e.User, &e.TokenID, &e.Action, &e.Target, &e.Source, &e.Outcome,
		&e.Status, &e.Message, &e.PrevHash, &e.Hash)
	e.At = parseTS(at)
	return e, err
}

// AuditEntries implements store.Store.
func (s *Store) AuditEntries(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	q := `SELECT seq, at, workspace, user_name, token_id, action, target, source, outcome, status, message, prev_hash, hash
		FROM audit WHERE seq > ?`
	args := []any{f.AfterSeq}
	if f.Workspace != "" {
		q += ` AND workspace IN (?, '')`
		args = append(args, f.Workspace)
	}
	if !f.Since.IsZero() {
		q += ` AND at >= ?`
		args = append(args, auditTS(f.Since))
	}
	if f.User != "" {
		q += ` AND user_name = ?`
		args = append(args, f.User)
	}
	if prefix, ok := strings.CutSuffix(f.Action, "."); ok {
		q += ` AND substr(action, 1, ?) = ?`
		args = append(args, len(prefix)+1, prefix+".")
	} else if f.Action != "" {
		q += ` AND action = ?`
		args = append(args, f.Action)
	}
	q += ` ORDER BY seq`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return queryAll(ctx, s.r, q, scanAudit, args...)
}

// PruneAudit implements store.Store.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM audit WHERE at < ?`, auditTS(before))
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// auditTS writes audit times with a fixed width, so they sort as text.
func auditTS(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }
