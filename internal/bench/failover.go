package bench

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/paddock-ml/paddock/api"
)

// figureFailover: three replicas on one PostgreSQL; the leader is killed
// with SIGKILL, and the figure is how long until another holds the lease
// and until a run submitted through the survivors is Running. Each round
// starts a replica in place of the one killed.
func figureFailover(ctx context.Context, cfg Config) ([]row, error) {
	const name = "7. failover: leader killed (SIGKILL)"
	const target = "new leader < 5 s"
	if cfg.Store == "" {
		return []row{{name, "skipped: needs a PostgreSQL store (-store postgres://…; bash scripts/dev-postgres.sh start)", target, ""}}, nil
	}
	first, err := startServer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// The replicas share the first one's data dir and schema, removed
	// once they have all stopped.
	dir, dsn, drop := first.dir, first.store, first.dropStore
	first.keepDir, first.dropStore = true, nil
	replicas := []*server{first}
	started := 1
	defer func() {
		for _, r := range replicas {
			r.stop()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		drop(ctx)
		cancel()
		os.RemoveAll(dir)
	}()
	more := func() error {
		r, err := startIn(ctx, cfg, dir, dsn, fmt.Sprintf("config-%d", started))
		if err != nil {
			return err
		}
		started++
		r.keepDir = true
		replicas = append(replicas, r)
		return nil
	}
	for range 2 {
		if err := more(); err != nil {
			return nil, err
		}
	}
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close(context.WithoutCancel(ctx))
	// leader is the URL of the replica holding a live lease, "" for none.
	leader := func() string {
		var url string
		db.QueryRow(ctx, `SELECT holder_url FROM paddock_leader WHERE expires_at > now()`).Scan(&url)
		return url
	}
	rounds := size(cfg, 5, 1)
	var takeover, running []time.Duration
	for range rounds {
		var urls []string
		for _, r := range replicas {
			urls = append(urls, r.url)
		}
		c := api.NewClient(strings.Join(urls, ","), first.client.Token, "default")
		// The workspace works (the local target's agent is up) before the kill.
		if _, err := runLatency(ctx, c, api.RunSubmit{Compute: "local", Command: []string{"true"}}); err != nil {
			return nil, err
		}
		victim := -1
		for victim < 0 {
			url := leader()
			for i, r := range replicas {
				if r.url == url {
					victim = i
				}
			}
			if victim < 0 {
				if err := sleep(ctx, 10*time.Millisecond); err != nil {
					return nil, err
				}
			}
		}
		dead := replicas[victim]
		killed := time.Now()
		dead.cmd.Process.Kill()
		dead.cmd.Wait()
		leaseCh := make(chan time.Duration, 1)
		go func() {
			for ctx.Err() == nil {
				if url := leader(); url != "" && url != dead.url {
					leaseCh <- time.Since(killed)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			leaseCh <- 0
		}()
		var r *api.Run
		for r == nil {
			r, err = c.SubmitRun(ctx, api.RunSubmit{Compute: "local", Command: []string{"true"}}, "")
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if time.Since(killed) > time.Minute {
					return nil, fmt.Errorf("no replica took a submission for a minute after the leader was killed: %w", err)
				}
				r = nil
				if err := sleep(ctx, 10*time.Millisecond); err != nil {
					return nil, err
				}
			}
		}
		done, err := c.WaitRun(ctx, r.ID, nil)
		if err != nil {
			return nil, err
		}
		if done.Status != api.RunCompleted || done.StartedAt == nil {
			return nil, fmt.Errorf("run %s after the failover ended %s: %s", r.ID, done.Status, done.Error)
		}
		takeover = append(takeover, <-leaseCh)
		running = append(running, done.StartedAt.Sub(killed))
		// Not dead.stop(): the agents it started are the new leader's now.
		replicas = append(replicas[:victim], replicas[victim+1:]...)
		if err := more(); err != nil {
			return nil, err
		}
	}
	sort.Slice(takeover, func(i, j int) bool { return takeover[i] < takeover[j] })
	sort.Slice(running, func(i, j int) bool { return running[i] < running[j] })
	return []row{{name, fmt.Sprintf("another replica leads after p50 %s, max %s; a run submitted through the survivors is Running p50 %s, max %s after the kill",
		ms(percentile(takeover, .5)), ms(takeover[len(takeover)-1]), ms(percentile(running, .5)), ms(running[len(running)-1])), target,
		fmt.Sprintf("3 replicas on one PostgreSQL (--lease-ttl 5s), %d rounds: kill -9 the leader, submit `true` on the local target through the other replicas until one takes it (every 10 ms), then start a replica in its place", rounds)}}, nil
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
