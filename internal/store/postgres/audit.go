package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/paddock-ml/paddock/internal/store"
)

// AppendAudit implements store.Store. Every server appends its own
// requests' entries; a transaction-scoped lock keeps the chain one line
// (each entry hashed with the one before it). Not fenced: a follower
// records what it refused.
func (s *Store) AppendAudit(ctx context.Context, entries []store.AuditEntry, seal func(*store.AuditEntry)) error {
	return s.inTx(ctx, false, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, s.lockSpace+lockAudit); err != nil {
			return err
		}
		var seq int64
		var prev string
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		b := &pgx.Batch{}
		for i := range entries {
			e := &entries[i]
			// Cleaned before sealing, so that the hash covers what is stored.
			for _, f := range []*string{&e.Workspace, &e.User, &e.TokenID, &e.Action, &e.Target, &e.Source, &e.Outcome, &e.Message} {
				*f = clean(*f)
			}
			seq++
			e.Seq, e.PrevHash = seq, prev
			seal(e)
			b.Queue(`INSERT INTO audit(seq, at, workspace, user_name, token_id, action, target, source, outcome, status, message, prev_hash, hash)
				VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, e.Seq, auditTS(e.At), e.Workspace, e.User,
				e.TokenID, e.Action, e.Target, e.Source, e.Outcome, e.Status, e.Message, e.PrevHash, e.Hash)
			prev = e.Hash
		}
		return tx.SendBatch(ctx, b).Close()
	})
}

func scanAudit(r pgx.Row) (store.AuditEntry, error) {
	var e store.AuditEntry
	var at string
	err := r.Scan(&e.Seq, &at, &e.Workspace, &e.User, &e.TokenID, &e.Action, &e.Target, &e.Source, &e.Outcome,
		&e.Status, &e.Message, &e.PrevHash, &e.Hash)
	e.At, _ = time.Parse(time.RFC3339Nano, at)
	return e, err
}

// AuditEntries implements store.Store.
func (s *Store) AuditEntries(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	q := `SELECT seq, at, workspace, user_name, token_id, action, target, source, outcome, status, message, prev_hash, hash
		FROM audit WHERE seq > $1`
	args := []any{f.AfterSeq}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Workspace != "" {
		q += ` AND workspace IN (` + arg(f.Workspace) + `, '')`
	}
	if !f.Since.IsZero() {
		q += ` AND at >= ` + arg(auditTS(f.Since))
	}
	if f.User != "" {
		q += ` AND user_name = ` + arg(f.User)
	}
	if prefix, ok := strings.CutSuffix(f.Action, "."); ok {
		q += ` AND starts_with(action, ` + arg(prefix+".") + `)`
	} else if f.Action != "" {
		q += ` AND action = ` + arg(f.Action)
	}
	q += ` ORDER BY seq`
	if f.Limit > 0 {
		q += ` LIMIT ` + arg(f.Limit)
	}
	return queryAll(ctx, s, q, scanAudit, args...)
}

// PruneAudit implements store.Store.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	ct, err := s.pool.Exec(ctx, `DELETE FROM audit WHERE at < $1`, auditTS(before))
	if err != nil {
		return 0, s.check(err)
	}
	return int(ct.RowsAffected()), nil
}

// auditTS writes audit times with a fixed width, so they sort as text.
func auditTS(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }
