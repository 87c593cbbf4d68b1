package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// SaveBatch implements store.Store.
func (s *Store) SaveBatch(ctx context.Context, runs []store.Run, nodes []store.Node, deleteNodes []string) error {
	return s.reserve.critical(func() error { return s.saveBatch(ctx, runs, nodes, deleteNodes) })
}

func (s *Store) saveBatch(ctx context.Context, runs []store.Run, nodes []store.Node, deleteNodes []string) error {
	if len(runs) == 0 && len(nodes) == 0 && len(deleteNodes) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if len(runs) > 0 {
		st, err := tx.PrepareContext(ctx, `INSERT INTO runs(id, workspace, compute, seq, status, node, token_hash, idem_key,
			created_by, created_at, experiment, data) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT(id) DO UPDATE SET status=excluded.status, node=excluded.node,
			token_hash=excluded.token_hash, data=excluded.data`)
		if err != nil {
			return err
		}
		defer st.Close()
		for i := range runs {
			r := &runs[i]
			data, err := r.EncodeData()
			if err != nil {
				return err
			}
			if _, err := st.ExecContext(ctx, r.ID, r.Workspace, r.Compute, r.Seq, string(r.Status), r.Node, r.TokenHash,
				r.IdempotencyKey, r.CreatedBy, ts(r.CreatedAt), r.Experiment, string(data)); err != nil {
				if isUniqueViolation(err) {
					return api.Conflict("a run was already submitted with this Idempotency-Key")
				}
				return err
			}
		}
	}
	for _, n := range nodes {
		data, err := json.Marshal(n)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO nodes(id, workspace, compute, token_hash, created_at, data) VALUES(?,?,?,?,?,?)
			ON CONFLICT(id) DO UPDATE SET token_hash=excluded.token_hash, data=excluded.data`,
			n.ID, n.Workspace, n.Compute, n.TokenHash, ts(n.CreatedAt), string(data)); err != nil {
			return err
		}
	}
	for _, id := range deleteNodes {
		if _, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE id = ?`, id); err != nil {
			return err
		}
	}
	return tx.Commit()
}

const runCols = `workspace, seq, node, token_hash, idem_key, data`

func scanRun(r rowScanner) (store.Run, error) {
	var out store.Run
	var data string
	if err := r.Scan(&out.Workspace, &out.Seq, &out.Node, &out.TokenHash, &out.IdempotencyKey, &data); err != nil {
		return out, err
	}
	err := out.DecodeData([]byte(data))
	return out, err
}

func (s *Store) oneRun(ctx context.Context, where string, args ...any) (store.Run, error) {
	r, err := scanRun(s.r.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return r, api.NotFound("run not found")
	}
	return r, err
}

func (s *Store) runs(ctx context.Context, query string, args ...any) ([]store.Run, error) {
	return queryAll(ctx, s.r, `SELECT `+runCols+` FROM runs WHERE `+query, scanRun, args...)
}

// GetRun implements store.Store.
func (s *Store) GetRun(ctx context.Context, workspace, id string) (store.Run, error) {
	r, err := s.oneRun(ctx, `workspace = ? AND id = ?`, workspace, id)
	if errors.Is(err, api.ErrNotFound) {
		return r, api.NotFound("run %q not found in workspace %q", id, workspace)
	}
	return r, err
}

// ListRuns implements store.Store.
func (s *Store) ListRuns(ctx context.Context, workspace string, f store.RunFilter) ([]store.Run, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	where, args := `workspace = ?`, []any{workspace}
	for _, c := range []struct{ col, v string }{{"compute", f.Compute}, {"status", string(f.Status)},
		{"experiment", f.Experiment}, {"created_by", f.User}} {
		if c.v != "" {
			where += ` AND ` + c.col + ` = ?`
			args = append(args, c.v)
		}
	}
	if f.BeforeSeq > 0 {
		where += ` AND seq < ?`
		args = append(args, f.BeforeSeq)
	}
	if f.AfterSeq > 0 {
		// The page just after the cursor, read upwards, then turned
		// newest first like every page.
		rs, err := s.runs(ctx, where+` AND seq > ? ORDER BY seq LIMIT ?`, append(args, f.AfterSeq, f.Limit)...)
		slices.Reverse(rs)
		return rs, err
	}
	return s.runs(ctx, where+` ORDER BY seq DESC LIMIT ?`, append(args, f.Limit)...)
}

// ActiveRuns implements store.Store.
func (s *Store) ActiveRuns(ctx context.Context) ([]store.Run, error) {
	return s.runs(ctx, `status NOT IN ('Completed','Failed','Canceled') ORDER BY seq`)
}

// MaxRunSeq implements store.Store.
func (s *Store) MaxRunSeq(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM runs`).Scan(&n)
	return n, err
}

// RunByIdempotencyKey implements store.Store.
func (s *Store) RunByIdempotencyKey(ctx context.Context, workspace, user, key string) (store.Run, error) {
	return s.oneRun(ctx, `workspace = ? AND created_by = ? AND idem_key = ?`, workspace, user, key)
}

// AppendLogs implements store.Store.
func (s *Store) AppendLogs(ctx context.Context, runID string, attempt, rank int, lines []store.LogLine) (int64, error) {
	if s.reserve.short() {
		return 0, errDiskFull
	}
	ack, err := s.appendLogs(ctx, runID, attempt, rank, lines)
	return ack, storageError(err)
}

func (s *Store) appendLogs(ctx context.Context, runID string, attempt, rank int, lines []store.LogLine) (int64, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO run_logs(run_id, attempt, rank, aseq, stream, ts, line) VALUES(?,?,?,?,?,?,?)
		ON CONFLICT DO NOTHING`)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	for _, l := range lines {
		if _, err := st.ExecContext(ctx, runID, attempt, rank, l.ASeq, l.Stream, ts(l.Time), l.Text); err != nil {
			return 0, err
		}
	}
	var ack int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(aseq), 0) FROM run_logs WHERE run_id = ? AND attempt = ? AND rank = ?`,
		runID, attempt, rank).Scan(&ack); err != nil {
		return 0, err
	}
	return ack, tx.Commit()
}

// LogBytes implements store.Store.
func (s *Store) LogBytes(ctx context.Context, runID string) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(SUM(LENGTH(CAST(line AS BLOB))), 0) FROM run_logs WHERE run_id = ?`, runID).Scan(&n)
	return n, err
}

// LogAck implements store.Store.
func (s *Store) LogAck(ctx context.Context, runID string, attempt, rank int) (int64, error) {
	var ack int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(aseq), 0) FROM run_logs WHERE run_id = ? AND attempt = ? AND rank = ?`,
		runID, attempt, rank).Scan(&ack)
	return ack, err
}

// Logs implements store.Store.
func (s *Store) Logs(ctx context.Context, runID string, afterSeq int64, limit int) ([]api.LogLine, error) {
	return queryAll(ctx, s.r, `SELECT seq, attempt, rank, stream, ts, line FROM run_logs
		WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`, scanLogLine, runID, afterSeq, limit)
}

// LogsBefore implements store.Store.
func (s *Store) LogsBefore(ctx context.Context, runID string, beforeSeq int64, limit int) ([]api.LogLine, error) {
	ls, err := queryAll(ctx, s.r, `SELECT seq, attempt, rank, stream, ts, line FROM run_logs
		WHERE run_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`, scanLogLine, runID, beforeSeq, limit)
	slices.Reverse(ls)
	return ls, err
}

func scanLogLine(r rowScanner) (api.LogLine, error) {
	var l api.LogLine
	var t string
	err := r.Scan(&l.Seq, &l.Attempt, &l.Rank, &l.Stream, &t, &l.Text)
	l.Time = parseTS(t)
	return l, err
}

// AddMetrics implements store.Store.
func (s *Store) AddMetrics(ctx context.Context, runID string, ms []api.Metric) error {
	if s.reserve.short() {
		return errDiskFull
	}
	return storageError(s.addMetrics(ctx, runID, ms))
}

func (s *Store) addMetrics(ctx context.Context, runID string, ms []api.Metric) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, m := range ms {
		text := m.Text
		if len(m.Data) > 0 { // rows and JSON values keep their JSON in text
			text = string(m.Data)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO run_metrics(run_id, name, step, value, ts, kind, text) VALUES(?,?,?,?,?,?,?)`,
			runID, m.Name, m.Step, m.Value, ts(m.Time), m.Kind, text); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Metrics implements store.Store.
func (s *Store) Metrics(ctx context.Context, runID string) ([]api.Metric, error) {
	return queryAll(ctx, s.r, `SELECT name, step, value, ts, kind, text FROM run_metrics WHERE run_id = ?
		ORDER BY name, step, rowid`, scanMetric, runID)
}

func scanMetric(r rowScanner) (api.Metric, error) {
	var m api.Metric
	var t, text string
	err := r.Scan(&m.Name, &m.Step, &m.Value, &t, &m.Kind, &text)
	m.Time = parseTS(t)
	if m.Kind == api.MetricRow || m.Kind == api.MetricJSON {
		m.Data = json.RawMessage(text)
	} else {
		m.Text = text
	}
	return m, err
}

// SetRunTags implements store.Store.
func (s *Store) SetRunTags(ctx context.Context, runID string, set map[string]string, remove []string) error {
	if s.reserve.short() {
		return errDiskFull
	}
	return storageError(s.setRunTags(ctx, runID, set, remove))
}

func (s *Store) setRunTags(ctx context.Context, runID string, set map[string]string, remove []string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, k := range remove {
		if _, err := tx.ExecContext(ctx, `DELETE FROM run_tags WHERE run_id = ? AND key = ?`, runID, k); err != nil {
			return err
		}
	}
	for k, v := range set {
		if _, err := tx.ExecContext(ctx, `INSERT INTO run_tags(run_id, key, value) VALUES(?,?,?)
			ON CONFLICT(run_id, key) DO UPDATE SET value = excluded.value`, runID, k, v); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// RunTags implements store.Store.
func (s *Store) RunTags(ctx context.Context, runIDs ...string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for len(runIDs) > 0 {
		batch := runIDs[:min(len(runIDs), 500)] // under SQLite's limit of bound parameters
		runIDs = runIDs[len(batch):]
		args := make([]any, len(batch))
		for i, id := range batch {
			args[i] = id
		}
		tags, err := queryAll(ctx, s.r, `SELECT run_id, key, value FROM run_tags WHERE run_id IN (?`+strings.Repeat(",?", len(batch)-1)+`)`,
			func(r rowScanner) (store.RunTag, error) {
				var t store.RunTag
				err := r.Scan(&t.Run, &t.Key, &t.Value)
				return t, err
			}, args...)
		if err != nil {
			return nil, err
		}
		store.AddTags(out, tags)
	}
	return out, nil
}

func (s *Store) nodes(ctx context.Context, where string, args ...any) ([]store.Node, error) {
	return queryAll(ctx, s.r, `SELECT token_hash, data FROM nodes WHERE `+where, scanNode, args...)
}

func scanNode(r rowScanner) (store.Node, error) {
	var n store.Node
	var hash, data string
	if err := r.Scan(&hash, &data); err != nil {
		return n, err
	}
	if err := json.Unmarshal([]byte(data), &n); err != nil {
		return n, err
	}
	n.TokenHash = hash
	return n, nil
}

// Nodes implements store.Store.
func (s *Store) Nodes(ctx context.Context) ([]store.Node, error) {
	return s.nodes(ctx, `1 ORDER BY id`)
}

// NodeByTokenHash implements store.Store.
func (s *Store) NodeByTokenHash(ctx context.Context, hash string) (store.Node, error) {
	ns, err := s.nodes(ctx, `token_hash = ?`, hash)
	if err != nil {
		return store.Node{}, err
	}
	if len(ns) == 0 {
		return store.Node{}, api.NotFound("no such node")
	}
	return ns[0], nil
}

// Quotas implements store.Store.
func (s *Store) Quotas(ctx context.Context, workspace string) ([]store.Quota, error) {
	return queryAll(ctx, s.r, `SELECT family, dedicated_cores, lowpriority_cores FROM quotas
		WHERE workspace = ? ORDER BY family`, func(r rowScanner) (store.Quota, error) {
		q := store.Quota{Workspace: workspace}
		err := r.Scan(&q.Family, &q.DedicatedCores, &q.LowPriorityCores)
		return q, err
	}, workspace)
}

// PutQuota implements store.Store.
func (s *Store) PutQuota(ctx context.Context, q store.Quota) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO quotas(workspace, family, dedicated_cores, lowpriority_cores) VALUES(?,?,?,?)
		ON CONFLICT(workspace, family) DO UPDATE SET dedicated_cores = excluded.dedicated_cores,
		lowpriority_cores = excluded.lowpriority_cores`, q.Workspace, q.Family, q.DedicatedCores, q.LowPriorityCores)
	return err
}
