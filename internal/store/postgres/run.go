package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// SaveBatch implements store.Store: every run and node of the batch in
// one round trip (arrays unnested into one statement per table), fenced,
// and a notification naming the runs for the other servers.
func (s *Store) SaveBatch(ctx context.Context, runs []store.Run, nodes []store.Node, deleteNodes []string) error {
	if len(runs) == 0 && len(nodes) == 0 && len(deleteNodes) == 0 {
		return nil
	}
	n := len(runs)
	ids, wss, computes, statuses, nodeIDs, hashes, keys, bys, datas := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	exps := make([]string, n)
	seqs, created := make([]int64, n), make([]time.Time, n)
	for i := range runs {
		r := &runs[i]
		data, err := r.EncodeData()
		if err != nil {
			return err
		}
		ids[i], wss[i], computes[i], statuses[i], nodeIDs[i] = r.ID, r.Workspace, r.Compute, string(r.Status), r.Node
		hashes[i], keys[i], bys[i], datas[i] = r.TokenHash, r.IdempotencyKey, r.CreatedBy, string(data)
		seqs[i], created[i], exps[i] = r.Seq, r.CreatedAt, r.Experiment
	}
	m := len(nodes)
	nIDs, nWss, nComputes, nHashes, nDatas := make([]string, m), make([]string, m), make([]string, m), make([]string, m), make([]string, m)
	nCreated := make([]time.Time, m)
	for i, nd := range nodes {
		data, err := json.Marshal(nd)
		if err != nil {
			return err
		}
		nIDs[i], nWss[i], nComputes[i], nHashes[i], nDatas[i], nCreated[i] = nd.ID, nd.Workspace, nd.Compute, nd.TokenHash, string(data), nd.CreatedAt
	}
	err := s.pipeline(ctx, true, func(b *pgx.Batch) {
		if n > 0 {
			b.Queue(`INSERT INTO runs(id, workspace, compute, seq, status, node, token_hash, idem_key, created_by, created_at, data, experiment)
				SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
					$8::text[], $9::text[], $10::timestamptz[], $11::json[], $12::text[])
				ON CONFLICT(id) DO UPDATE SET status=excluded.status, node=excluded.node,
				token_hash=excluded.token_hash, data=excluded.data`,
				ids, wss, computes, seqs, statuses, nodeIDs, hashes, keys, bys, created, datas, exps)
			for _, chunk := range notifyChunks(ids) {
				b.Queue(`SELECT pg_notify($1, $2)`, s.chRuns, s.origin+"|"+chunk)
			}
		}
		if m > 0 {
			b.Queue(`INSERT INTO nodes(id, workspace, compute, token_hash, created_at, data)
				SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::json[])
				ON CONFLICT(id) DO UPDATE SET token_hash=excluded.token_hash, data=excluded.data`,
				nIDs, nWss, nComputes, nHashes, nCreated, nDatas)
		}
		if len(deleteNodes) > 0 {
			b.Queue(`DELETE FROM nodes WHERE id = ANY($1)`, deleteNodes)
		}
	})
	if isUniqueViolation(err) && strings.Contains(err.Error(), "runs_idem") {
		return api.Conflict("a run was already submitted with this Idempotency-Key")
	}
	return err
}

// maxNotify keeps a notification's payload under PostgreSQL's 8000 bytes.
const maxNotify = 7800

// notifyChunks joins ids with commas into payloads that fit a notification.
func notifyChunks(ids []string) []string {
	var out []string
	var cur strings.Builder
	for _, id := range ids {
		if cur.Len() > 0 && cur.Len()+1+len(id) > maxNotify {
			out = append(out, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(',')
		}
		cur.WriteString(id)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

const runCols = `workspace, seq, node, token_hash, idem_key, data`

func scanRun(r pgx.Row) (store.Run, error) {
	var out store.Run
	var data string
	if err := r.Scan(&out.Workspace, &out.Seq, &out.Node, &out.TokenHash, &out.IdempotencyKey, &data); err != nil {
		return out, err
	}
	err := out.DecodeData([]byte(data))
	return out, err
}

func (s *Store) oneRun(ctx context.Context, where string, args ...any) (store.Run, error) {
	r, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE `+where, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, api.NotFound("run not found")
	}
	return r, s.check(err)
}

func (s *Store) runs(ctx context.Context, query string, args ...any) ([]store.Run, error) {
	return queryAll(ctx, s, `SELECT `+runCols+` FROM runs WHERE `+query, scanRun, args...)
}

// GetRun implements store.Store.
func (s *Store) GetRun(ctx context.Context, workspace, id string) (store.Run, error) {
	r, err := s.oneRun(ctx, `workspace = $1 AND id = $2`, workspace, id)
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
	where, args := `workspace = $1`, []any{workspace}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	for _, c := range []struct{ col, v string }{{"compute", f.Compute}, {"status", string(f.Status)},
		{"experiment", f.Experiment}, {"created_by", f.User}} {
		if c.v != "" {
			where += ` AND ` + c.col + ` = ` + arg(c.v)
		}
	}
	if f.BeforeSeq > 0 {
		where += ` AND seq < ` + arg(f.BeforeSeq)
	}
	if f.AfterSeq > 0 {
		// The page just after the cursor, read upwards, then turned
		// newest first like every page.
		where += ` AND seq > ` + arg(f.AfterSeq)
		rs, err := s.runs(ctx, where+` ORDER BY seq LIMIT `+arg(f.Limit), args...)
		slices.Reverse(rs)
		return rs, err
	}
	return s.runs(ctx, where+` ORDER BY seq DESC LIMIT `+arg(f.Limit), args...)
}

// ActiveRuns implements store.Store.
func (s *Store) ActiveRuns(ctx context.Context) ([]store.Run, error) {
	return s.runs(ctx, `status NOT IN ('Completed','Failed','Canceled') ORDER BY seq`)
}

// MaxRunSeq implements store.Store.
func (s *Store) MaxRunSeq(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM runs`).Scan(&n)
	return n, s.check(err)
}

// RunByIdempotencyKey implements store.Store.
func (s *Store) RunByIdempotencyKey(ctx context.Context, workspace, user, key string) (store.Run, error) {
	return s.oneRun(ctx, `workspace = $1 AND created_by = $2 AND idem_key = $3`, workspace, user, key)
}

// AppendLogs implements store.Store. Appends for one run take a lock on
// the run for their transaction, so that lines get their cursor (seq) in
// the order they become visible: a reader that has seen seq N never later
// finds a line below N appear. Not fenced: lines are keyed by the agent's
// numbering, so a line stored twice is stored once.
func (s *Store) AppendLogs(ctx context.Context, runID string, attempt, rank int, lines []store.LogLine) (int64, error) {
	n := len(lines)
	aseqs, streams, times, texts := make([]int64, n), make([]string, n), make([]time.Time, n), make([]string, n)
	for i, l := range lines {
		aseqs[i], streams[i], times[i], texts[i] = l.ASeq, clean(l.Stream), l.Time, clean(l.Text)
	}
	var ack int64
	err := s.pipeline(ctx, false, func(b *pgx.Batch) {
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, $2))`, runID, int64(s.lockSpace))
		if n > 0 {
			b.Queue(`INSERT INTO run_logs(run_id, attempt, rank, aseq, stream, ts, line)
				SELECT $1, $2, $3, a, st, t, l FROM unnest($4::bigint[], $5::text[], $6::timestamptz[], $7::text[]) AS u(a, st, t, l)
				ORDER BY a
				ON CONFLICT DO NOTHING`, runID, attempt, rank, aseqs, streams, times, texts)
			b.Queue(`SELECT pg_notify($1, $2)`, s.chRuns, s.origin+"|"+runID)
		}
		b.Queue(`SELECT COALESCE(MAX(aseq), 0) FROM run_logs WHERE run_id = $1 AND attempt = $2 AND rank = $3`,
			runID, attempt, rank).QueryRow(func(r pgx.Row) error { return r.Scan(&ack) })
	})
	return ack, err
}

// LogBytes implements store.Store.
func (s *Store) LogBytes(ctx context.Context, runID string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(SUM(octet_length(line)), 0) FROM run_logs WHERE run_id = $1`, runID).Scan(&n)
	return n, s.check(err)
}

// LogAck implements store.Store.
func (s *Store) LogAck(ctx context.Context, runID string, attempt, rank int) (int64, error) {
	var ack int64
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(aseq), 0) FROM run_logs WHERE run_id = $1 AND attempt = $2 AND rank = $3`,
		runID, attempt, rank).Scan(&ack)
	return ack, s.check(err)
}

// Logs implements store.Store.
func (s *Store) Logs(ctx context.Context, runID string, afterSeq int64, limit int) ([]api.LogLine, error) {
	return queryAll(ctx, s, `SELECT seq, attempt, rank, stream, ts, line FROM run_logs
		WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, scanLogLine, runID, afterSeq, limit)
}

// LogsBefore implements store.Store.
func (s *Store) LogsBefore(ctx context.Context, runID string, beforeSeq int64, limit int) ([]api.LogLine, error) {
	ls, err := queryAll(ctx, s, `SELECT seq, attempt, rank, stream, ts, line FROM run_logs
		WHERE run_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`, scanLogLine, runID, beforeSeq, limit)
	slices.Reverse(ls)
	return ls, err
}

func scanLogLine(r pgx.Row) (api.LogLine, error) {
	var l api.LogLine
	err := r.Scan(&l.Seq, &l.Attempt, &l.Rank, &l.Stream, &l.Time, &l.Text)
	l.Time = utc(l.Time)
	return l, err
}

// AddMetrics implements store.Store. Not fenced: metrics are appended.
func (s *Store) AddMetrics(ctx context.Context, runID string, ms []api.Metric) error {
	if len(ms) == 0 {
		return nil
	}
	n := len(ms)
	names, steps, values, times := make([]string, n), make([]int64, n), make([]float64, n), make([]time.Time, n)
	kinds, texts := make([]string, n), make([]string, n)
	for i, m := range ms {
		names[i], steps[i], values[i], times[i], kinds[i], texts[i] = clean(m.Name), m.Step, m.Value, m.Time, m.Kind, clean(m.Text)
		if len(m.Data) > 0 { // rows and JSON values keep their JSON in text
			texts[i] = clean(string(m.Data))
		}
	}
	return s.pipeline(ctx, false, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO run_metrics(run_id, name, step, value, ts, kind, text)
			SELECT $1, n, st, v, t, k, x FROM unnest($2::text[], $3::bigint[], $4::float8[], $5::timestamptz[], $6::text[], $7::text[])
			WITH ORDINALITY AS u(n, st, v, t, k, x, o) ORDER BY o`, runID, names, steps, values, times, kinds, texts)
		b.Queue(`SELECT pg_notify($1, $2)`, s.chRuns, s.origin+"|"+runID)
	})
}

// Metrics implements store.Store.
func (s *Store) Metrics(ctx context.Context, runID string) ([]api.Metric, error) {
	return queryAll(ctx, s, `SELECT name, step, value, ts, kind, text FROM run_metrics WHERE run_id = $1
		ORDER BY name, step, id`, scanMetric, runID)
}

func scanMetric(r pgx.Row) (api.Metric, error) {
	var m api.Metric
	var text string
	err := r.Scan(&m.Name, &m.Step, &m.Value, &m.Time, &m.Kind, &text)
	m.Time = utc(m.Time)
	if m.Kind == api.MetricRow || m.Kind == api.MetricJSON {
		m.Data = json.RawMessage(text)
	} else {
		m.Text = text
	}
	return m, err
}

// SetRunTags implements store.Store. Not fenced: runs and users change
// tags beside the run's record, which the leader writes.
func (s *Store) SetRunTags(ctx context.Context, runID string, set map[string]string, remove []string) error {
	keys, values := make([]string, 0, len(set)), make([]string, 0, len(set))
	for k, v := range set {
		keys, values = append(keys, clean(k)), append(values, clean(v))
	}
	return s.pipeline(ctx, false, func(b *pgx.Batch) {
		if len(remove) > 0 {
			b.Queue(`DELETE FROM run_tags WHERE run_id = $1 AND key = ANY($2)`, runID, remove)
		}
		if len(keys) > 0 {
			b.Queue(`INSERT INTO run_tags(run_id, key, value) SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS u(k, v)
				ON CONFLICT(run_id, key) DO UPDATE SET value = excluded.value`, runID, keys, values)
		}
		b.Queue(`SELECT pg_notify($1, $2)`, s.chRuns, s.origin+"|"+runID)
	})
}

// RunTags implements store.Store.
func (s *Store) RunTags(ctx context.Context, runIDs ...string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if len(runIDs) == 0 {
		return out, nil
	}
	tags, err := queryAll(ctx, s, `SELECT run_id, key, value FROM run_tags WHERE run_id = ANY($1)`, func(r pgx.Row) (store.RunTag, error) {
		var t store.RunTag
		err := r.Scan(&t.Run, &t.Key, &t.Value)
		return t, err
	}, runIDs)
	if err != nil {
		return nil, err
	}
	store.AddTags(out, tags)
	return out, nil
}

func (s *Store) nodes(ctx context.Context, where string, args ...any) ([]store.Node, error) {
	return queryAll(ctx, s, `SELECT token_hash, data FROM nodes WHERE `+where, scanNode, args...)
}

func scanNode(r pgx.Row) (store.Node, error) {
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
	return s.nodes(ctx, `true ORDER BY id`)
}

// NodeByTokenHash implements store.Store.
func (s *Store) NodeByTokenHash(ctx context.Context, hash string) (store.Node, error) {
	ns, err := s.nodes(ctx, `token_hash = $1`, hash)
	if err != nil {
		return store.Node{}, err
	}
	if len(ns) == 0 {
		return store.Node{}, api.NotFound("no such node")
	}
	return ns[0], nil
}
