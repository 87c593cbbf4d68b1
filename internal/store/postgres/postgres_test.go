package postgres

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/store/storetest"
	"github.com/paddock-ml/paddock/internal/testenv"
)

// open opens a store on a fresh schema of the test PostgreSQL.
func open(t *testing.T, dsn string, o Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, testenv.Postgres(t), Options{}) })
}

// Version N of the schema means the same on both stores: a migration
// appended to the SQLite store's list needs its twin here (the contract
// tests then check what it holds). Needs no PostgreSQL.
func TestMigrationsMatchSQLite(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.SchemaVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v != len(migrations) {
		t.Fatalf("the SQLite store has %d migrations and the PostgreSQL store %d: write the missing PostgreSQL one(s) in migrations.go", v, len(migrations))
	}
}

func TestMigrationsApplyOnceAndSurviveReopen(t *testing.T) {
	dsn := testenv.Postgres(t)
	s, err := Open(t.Context(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureWorkspace(t.Context(), "default"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dsn, Options{})
	v, err := s.SchemaVersion(t.Context())
	if err != nil || v != len(migrations) {
		t.Fatalf("schema version = %d, %v; want %d", v, err, len(migrations))
	}
	if ok, _ := s.WorkspaceExists(t.Context(), "default"); !ok {
		t.Fatal("data lost across reopen")
	}
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations(version, applied_at) VALUES(999, now())`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), dsn, Options{}); err == nil {
		t.Fatal("opened a database from a newer paddock")
	}
}

// Servers starting together migrate once.
func TestConcurrentOpen(t *testing.T) {
	dsn := testenv.Postgres(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			s, err := Open(t.Context(), dsn, Options{})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Text PostgreSQL cannot store (NUL bytes) is stored as U+FFFD.
func TestLogLinesWithNUL(t *testing.T) {
	s := open(t, testenv.Postgres(t), Options{})
	if _, err := s.AppendLogs(t.Context(), "r", 1, 0, []store.LogLine{{ASeq: 1, Stream: "stdout", Time: time.Now(), Text: "a\x00b"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Logs(t.Context(), "r", 0, 10)
	if err != nil || len(got) != 1 || got[0].Text != "a\uFFFDb" {
		t.Fatalf("Logs = %+v, %v", got, err)
	}
}

func fast() Options {
	return Options{LeaseTTL: 1500 * time.Millisecond, RenewEvery: 200 * time.Millisecond, CampaignEvery: 50 * time.Millisecond}
}

func replica(id string) store.Replica {
	return store.Replica{ID: id, URL: "http://" + id, Started: time.Now()}
}

// campaign returns the term of the first of stores to win, and its index.
func campaign(t *testing.T, ctx context.Context, stores ...*Store) (store.Term, int) {
	t.Helper()
	type won struct {
		term store.Term
		i    int
	}
	ch := make(chan won, len(stores))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, s := range stores {
		go func() {
			tm, err := s.Campaign(ctx, replica(string(rune('a'+i))))
			if err == nil {
				ch <- won{tm, i}
			}
		}()
	}
	select {
	case w := <-ch:
		return w.term, w.i
	case <-time.After(20 * time.Second):
		t.Fatal("nobody won the lease")
	}
	return nil, 0
}

// One server leads; the others' fenced writes are refused; the leader's
// are allowed.
func TestOneLeaderAndFencedFollowers(t *testing.T) {
	dsn := testenv.Postgres(t)
	a, b := open(t, dsn, fast()), open(t, dsn, fast())
	a.Follow()
	b.Follow()
	if err := b.EnsureWorkspace(t.Context(), "ws"); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("a follower's write: err = %v, want ErrNotLeader", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	term, i := campaign(t, ctx, a, b)
	leader, follower := a, b
	if i == 1 {
		leader, follower = b, a
	}
	if err := leader.EnsureWorkspace(t.Context(), "ws"); err != nil {
		t.Fatalf("the leader's write: %v", err)
	}
	if err := follower.PutQuota(t.Context(), store.Quota{Workspace: "ws"}); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("the follower's write: err = %v, want ErrNotLeader", err)
	}
	// Unfenced writes go through on any server.
	if _, err := follower.AppendLogs(t.Context(), "r", 1, 0, []store.LogLine{{ASeq: 1, Stream: "stdout", Time: time.Now(), Text: "x"}}); err != nil {
		t.Fatal(err)
	}
	r, epoch, ok, err := follower.Leader(t.Context())
	if err != nil || !ok || epoch != term.Epoch() {
		t.Fatalf("Leader = %+v, %d, %v, %v; want epoch %d", r, epoch, ok, err, term.Epoch())
	}
	select {
	case <-term.Lost():
		t.Fatal("the term was lost while the leader renews it")
	case <-time.After(2 * fast().LeaseTTL):
	}
}

// A leader that stops renewing (paused) loses the lease after LeaseTTL;
// when it wakes, its writes are refused and its term is lost.
func TestPausedLeaderIsFencedOut(t *testing.T) {
	dsn := testenv.Postgres(t)
	a, b := open(t, dsn, fast()), open(t, dsn, fast())
	a.Follow()
	b.Follow()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	termA, err := a.Campaign(ctx, replica("a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.EnsureWorkspace(t.Context(), "ws"); err != nil {
		t.Fatal(err)
	}
	// "Pause" a: its renewals stop, but its session (and the advisory lock
	// that says it is alive) stays, as under SIGSTOP. Here another session
	// holds the lock in its place once a's renewals have stopped.
	ta := termA.(*term)
	close(ta.stop)
	<-ta.done
	held, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(context.Background())
	var ok bool
	if err := held.QueryRow(t.Context(), `SELECT pg_try_advisory_lock($1, $2)`, a.lockSpace+lockLeader, leaderLockKey(termA.Epoch())).Scan(&ok); err != nil || !ok {
		t.Fatalf("holding a's lock: %v, %v", ok, err)
	}
	start := time.Now()
	termB, err := b.Campaign(ctx, replica("b"))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < fast().LeaseTTL/2 {
		t.Fatalf("b took over after %v, before a's lease could expire", took)
	}
	if termB.Epoch() <= termA.Epoch() {
		t.Fatalf("epochs %d then %d: not increasing", termA.Epoch(), termB.Epoch())
	}
	if err := a.PutQuota(t.Context(), store.Quota{Workspace: "ws"}); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("the old leader's write after the takeover: err = %v, want ErrNotLeader", err)
	}
	select {
	case <-termA.Lost():
	default:
		t.Fatal("the old leader's term is not lost after a refused write")
	}
	if err := b.PutQuota(t.Context(), store.Quota{Workspace: "ws", DedicatedCores: 8}); err != nil {
		t.Fatal(err)
	}
}

// A leader whose process dies (its connections drop) is replaced at once,
// without waiting for its lease to expire.
func TestDeadLeaderIsReplacedQuickly(t *testing.T) {
	dsn := testenv.Postgres(t)
	o := fast()
	o.LeaseTTL = 30 * time.Second // so only the dead session can explain a quick takeover
	o.RenewEvery = time.Second
	a, b := open(t, dsn, o), open(t, dsn, o)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	termA, err := a.Campaign(ctx, replica("a"))
	if err != nil {
		t.Fatal(err)
	}
	ta := termA.(*term)
	close(ta.stop) // no more renewals
	<-ta.done      // and the lease connection closed, as if the process died
	start := time.Now()
	if _, err := b.Campaign(ctx, replica("b")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("takeover took %v", took)
	}
}

// A fenced write in flight when another server takes over either commits
// before the takeover or fails: the takeover waits for it.
func TestTakeoverWaitsForFencedWrites(t *testing.T) {
	dsn := testenv.Postgres(t)
	a, b := open(t, dsn, fast()), open(t, dsn, fast())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	termA, err := a.Campaign(ctx, replica("a"))
	if err != nil {
		t.Fatal(err)
	}
	// A fenced transaction of a's, held open.
	tx, err := a.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(t.Context(), `SELECT paddock_fence($1)`, termA.Epoch()); err != nil {
		t.Fatal(err)
	}
	if err := termA.Resign(t.Context()); err != nil {
		t.Fatal(err)
	}
	won := make(chan store.Term, 1)
	go func() {
		tm, err := b.Campaign(ctx, replica("b"))
		if err == nil {
			won <- tm
		}
	}()
	select {
	case <-won:
		t.Fatal("b took over while a fenced write of a's was in flight")
	case <-time.After(time.Second):
	}
	if _, err := tx.Exec(t.Context(), `INSERT INTO workspaces(name, created_at) VALUES('late', now())`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatalf("the fenced write in flight: %v", err)
	}
	select {
	case <-won:
	case <-time.After(10 * time.Second):
		t.Fatal("b did not take over after the write ended")
	}
	// After the takeover, a's epoch is refused.
	err = pgx.BeginFunc(t.Context(), a.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(t.Context(), `SELECT paddock_fence($1)`, termA.Epoch())
		return err
	})
	if pgCode(err) != codeFenced {
		t.Fatalf("a fenced write of the old epoch: err = %v, want %s", err, codeFenced)
	}
}

// Followers hear of other servers' changes to runs.
func TestWatchChanges(t *testing.T) {
	dsn := testenv.Postgres(t)
	a, b := open(t, dsn, Options{}), open(t, dsn, Options{})
	if err := a.EnsureWorkspace(t.Context(), "ws"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan []string, 10)
	go b.WatchChanges(ctx, func(ids []string) { got <- ids }, func() {}, func() {})
	deadline := time.After(20 * time.Second)
	for {
		// Until the listener is up, notifications go unheard: write again.
		run := store.Run{Run: api.Run{ID: "run-x", Compute: "c", Status: api.RunQueued, CreatedAt: time.Now()}, Workspace: "ws", Seq: 1}
		if err := a.SaveBatch(t.Context(), []store.Run{run}, nil, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case ids := <-got:
			if len(ids) != 1 || ids[0] != "run-x" {
				t.Fatalf("notified %v", ids)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no notification")
		}
	}
}

func TestNotifyChunks(t *testing.T) {
	ids := make([]string, 2000)
	for i := range ids {
		ids[i] = "run-abcdefghijklmnop"
	}
	chunks := notifyChunks(ids)
	n := 0
	for _, c := range chunks {
		if len(c) > maxNotify {
			t.Fatalf("a chunk of %d bytes", len(c))
		}
		n += len(splitIDs(c))
	}
	if n != len(ids) {
		t.Fatalf("%d ids in the chunks, want %d", n, len(ids))
	}
}

func splitIDs(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// Every table of the schema is in store.Tables with the same columns, but
// for the tables of the replicas and the row numbers PostgreSQL keeps.
func TestTablesListEveryColumn(t *testing.T) {
	s := open(t, testenv.Postgres(t), Options{})
	rows, err := s.pool.Query(t.Context(), `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name NOT IN ('schema_migrations', 'paddock_leader', 'paddock_replicas')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	have := storetest.Columns{}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		if table == "run_metrics" && col == "id" {
			continue // its order of arrival, made again by the copy
		}
		have.Add(table, col)
	}
	storetest.CheckTables(t, "PostgreSQL", have)
}
