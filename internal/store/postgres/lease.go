package postgres

import (
	"context"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/paddock-ml/paddock/internal/store"
)

// The leader lease is one row, paddock_leader: the epoch of the current
// term, who holds it, and until when (database time, so the servers'
// clocks do not matter).
//
//   - The leader renews the row every RenewEvery on a connection of its
//     own (the lease connection), on which it also holds the session
//     advisory lock (lockLeader, epoch) for the whole term.
//   - A follower takes over when the lease has expired (LeaseTTL without a
//     renewal: the leader is paused or cut off) or, at once, when it can
//     take the leader's advisory lock: then the leader's lease connection is
//     gone, which is what happens when its process dies (kill -9 included),
//     so a crashed leader is replaced within CampaignEvery, not LeaseTTL.
//   - A takeover locks the row FOR UPDATE, bumps the epoch and commits.
//     Every fenced write begins with paddock_fence(epoch), which takes a
//     KEY SHARE lock on the row if it still has that epoch: a takeover waits
//     for the fenced writes in flight to end, and a fenced write of the old
//     epoch that comes later fails. A paused leader that wakes up after
//     losing the lease therefore cannot write run, node or target state.
//   - The leader's term ends (Lost) when a renewal fails, when its lease
//     connection breaks (another server may already have taken over), or
//     when a fenced write finds the epoch moved on.

// Register implements store.Elector.
func (s *Store) Register(ctx context.Context, self store.Replica) error {
	beat := func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO paddock_replicas(id, url, started_at, last_seen) VALUES($1, $2, $3, now())
			ON CONFLICT(id) DO UPDATE SET url = excluded.url, last_seen = now()`, self.ID, self.URL, self.Started)
		return s.check(err)
	}
	if err := beat(ctx); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(s.opts.RenewEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				bg, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				s.pool.Exec(bg, `DELETE FROM paddock_replicas WHERE id = $1`, self.ID)
				cancel()
				return
			case <-t.C:
			}
			bctx, cancel := context.WithTimeout(ctx, s.opts.LeaseTTL)
			if err := beat(bctx); err != nil && ctx.Err() == nil {
				s.log.Warn("replica heartbeat failed", "err", err)
			}
			// Servers that stopped without saying so (killed) go after a while.
			s.pool.Exec(bctx, `DELETE FROM paddock_replicas WHERE last_seen < now() - $1::float8 * interval '1 millisecond'`, (20 * s.opts.LeaseTTL).Milliseconds())
			cancel()
		}
	}()
	return nil
}

// Follow implements store.Elector.
func (s *Store) Follow() { s.fence.follow() }

// Replicas implements store.Elector.
func (s *Store) Replicas(ctx context.Context) ([]store.Replica, error) {
	return queryAll(ctx, s, `SELECT r.id, r.url, r.started_at, r.last_seen FROM paddock_replicas r
		LEFT JOIN paddock_leader l ON l.holder = r.id AND l.expires_at > now()
		WHERE r.last_seen > now() - $1::float8 * interval '1 millisecond' ORDER BY (l.holder IS NULL), r.started_at, r.id`,
		func(r pgx.Row) (store.Replica, error) {
			var x store.Replica
			err := r.Scan(&x.ID, &x.URL, &x.Started, &x.LastSeen)
			x.Started, x.LastSeen = utc(x.Started), utc(x.LastSeen)
			return x, err
		}, (3 * s.opts.LeaseTTL).Milliseconds())
}

// Leader implements store.Elector.
func (s *Store) Leader(ctx context.Context) (store.Replica, int64, bool, error) {
	var r store.Replica
	var epoch int64
	var live bool
	err := s.pool.QueryRow(ctx, `SELECT holder, holder_url, epoch, expires_at > now() FROM paddock_leader WHERE id = 1`).
		Scan(&r.ID, &r.URL, &epoch, &live)
	if err != nil {
		return r, 0, false, s.check(err)
	}
	return r, epoch, live && r.ID != "", nil
}

// leaderLockKey is the second key of the advisory lock a term's leader
// holds: its epoch (PostgreSQL's two-key locks take 32-bit keys).
func leaderLockKey(epoch int64) int32 { return int32(epoch % (1 << 31)) }

// Campaign implements store.Elector.
func (s *Store) Campaign(ctx context.Context, self store.Replica) (store.Term, error) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	t := time.NewTicker(s.opts.CampaignEvery)
	defer t.Stop()
	for {
		if conn == nil || conn.IsClosed() {
			c, err := pgx.ConnectConfig(ctx, s.cfg.ConnConfig)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				s.log.Warn("campaigning for the lease: cannot connect", "err", redact(err))
			} else {
				conn = c
			}
		}
		if conn != nil {
			epoch, won, err := s.tryTakeover(ctx, conn, self)
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Warn("campaigning for the lease", "err", err)
				conn.Close(context.Background())
				conn = nil
			case won:
				tm := &term{s: s, epoch: epoch, conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
				conn = nil // the term's now
				tm.lost = s.fence.lead(epoch)
				go tm.renew()
				return tm, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// tryTakeover takes the lease if it has expired or its holder's session is
// gone, and returns the new epoch.
func (s *Store) tryTakeover(ctx context.Context, conn *pgx.Conn, self store.Replica) (int64, bool, error) {
	var epoch int64
	var holder string
	var live bool
	if err := conn.QueryRow(ctx, `SELECT epoch, holder, expires_at > now() FROM paddock_leader WHERE id = 1`).
		Scan(&epoch, &holder, &live); err != nil {
		return 0, false, err
	}
	if live && holder != "" {
		// The holder keeps (lockLeader, epoch) for as long as its session
		// lives: getting it means the holder's process or connection died.
		var free bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, s.lockSpace+lockLeader, leaderLockKey(epoch)).Scan(&free); err != nil {
			return 0, false, err
		}
		if !free {
			return 0, false, nil
		}
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, s.lockSpace+lockLeader, leaderLockKey(epoch)); err != nil {
			return 0, false, err
		}
		s.log.Info("the leader's session is gone; taking over", "old_leader", holder, "epoch", epoch)
	}
	var next int64
	won := false
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var cur int64
		if err := tx.QueryRow(ctx, `SELECT epoch FROM paddock_leader WHERE id = 1 FOR UPDATE`).Scan(&cur); err != nil {
			return err
		}
		if cur != epoch {
			return nil // someone else was faster
		}
		if err := tx.QueryRow(ctx, `UPDATE paddock_leader SET epoch = epoch + 1, holder = $1, holder_url = $2,
			expires_at = now() + $3::float8 * interval '1 millisecond' WHERE id = 1 RETURNING epoch`, self.ID, self.URL, s.opts.LeaseTTL.Milliseconds()).Scan(&next); err != nil {
			return err
		}
		// Held by this session for the whole term (it outlives the
		// transaction); taken before the commit, so that nobody can see the
		// new epoch without its lock held.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, s.lockSpace+lockLeader, leaderLockKey(next)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.chLeader, strconv.FormatInt(next, 10)); err != nil {
			return err
		}
		won = true
		return nil
	})
	if err != nil || !won {
		return 0, false, err
	}
	return next, true, nil
}

// term is this server's tenure; it renews the lease on its own
// connection until it ends.
type term struct {
	s     *Store
	epoch int64
	conn  *pgx.Conn
	lost  <-chan struct{}

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

func (t *term) Epoch() int64          { return t.epoch }
func (t *term) Lost() <-chan struct{} { return t.lost }

// renew keeps the lease until the term ends.
func (t *term) renew() {
	defer close(t.done)
	defer t.conn.Close(context.Background())
	tick := time.NewTicker(t.s.opts.RenewEvery)
	defer tick.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-t.stop:
			return
		case <-t.lost:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), t.s.opts.LeaseTTL/2)
		ct, err := t.conn.Exec(ctx, `UPDATE paddock_leader SET expires_at = now() + $1::float8 * interval '1 millisecond' WHERE id = 1 AND epoch = $2`,
			t.s.opts.LeaseTTL.Milliseconds(), t.epoch)
		cancel()
		switch {
		case err == nil && ct.RowsAffected() == 1:
			lastOK = time.Now()
			continue
		case err == nil:
			t.s.log.Error("the leader lease was taken over by another server", "epoch", t.epoch)
		case t.conn.IsClosed() || time.Since(lastOK) > t.s.opts.LeaseTTL/2:
			// Without its lease connection (and the advisory lock on it)
			// another server may take over at once: stop leading now.
			t.s.log.Error("the leader lease cannot be renewed", "epoch", t.epoch, "err", redact(err))
		default:
			t.s.log.Warn("renewing the leader lease failed; retrying", "epoch", t.epoch, "err", redact(err))
			continue
		}
		t.s.fence.lose()
		return
	}
}

// Resign implements store.Term.
func (t *term) Resign(ctx context.Context) error {
	var err error
	t.stopOnce.Do(func() {
		t.s.fence.resign()
		close(t.stop)
		<-t.done // the renewals have stopped; the lease connection is closed
		var ct interface{ RowsAffected() int64 }
		ct, err = t.s.pool.Exec(ctx, `UPDATE paddock_leader SET expires_at = '-infinity' WHERE id = 1 AND epoch = $1`, t.epoch)
		if err == nil && ct.RowsAffected() == 1 {
			_, err = t.s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, t.s.chLeader, strconv.FormatInt(t.epoch, 10))
		}
	})
	return err
}

// WithLock implements store.Locker: a session advisory lock, held on one
// connection of the pool while f runs.
func (s *Store) WithLock(ctx context.Context, name string, f func() error) error {
	h := fnv.New32a()
	h.Write([]byte(name))
	key := int32(h.Sum32())
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.check(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, s.lockSpace+lockBootstrap, key); err != nil {
		return s.check(err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, $2)`, s.lockSpace+lockBootstrap, key); err != nil {
			conn.Conn().Close(context.Background()) // closing the session releases it
		}
	}()
	return f()
}
