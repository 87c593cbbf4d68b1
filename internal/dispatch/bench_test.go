package dispatch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/pgschema"
	"github.com/paddock-ml/paddock/internal/store/postgres"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
)

// BenchmarkPlacements1000Nodes drives the real dispatcher and a real
// SQLite file (every state change committed, synchronous=FULL) with 1,000
// in-process simulated agents of 2 cores that finish each run at once:
// 20,000 one-core runs are submitted and the benchmark reports runs placed
// and completed per second (each run is three committed changes: placed,
// Running, Completed). The HTTP layer is not included. It runs on SQLite,
// and on PostgreSQL too when PADDOCK_TEST_POSTGRES names one (a schema of
// its own in it).
func BenchmarkPlacements1000Nodes(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchPlacements(b, func(ctx context.Context) (store.Store, error) {
			return sqlite.Open(ctx, filepath.Join(b.TempDir(), "p.db"))
		})
	})
	b.Run("postgres", func(b *testing.B) {
		base := os.Getenv("PADDOCK_TEST_POSTGRES")
		if base == "" {
			b.Skip("no PostgreSQL: set PADDOCK_TEST_POSTGRES (bash scripts/dev-postgres.sh start && eval $(bash scripts/dev-postgres.sh env))")
		}
		benchPlacements(b, func(ctx context.Context) (store.Store, error) {
			dsn, drop, err := pgschema.New(ctx, base)
			if err != nil {
				return nil, err
			}
			b.Cleanup(func() { drop(context.Background()) })
			return postgres.Open(ctx, dsn, postgres.Options{})
		})
	})
}

func benchPlacements(b *testing.B, open func(context.Context) (store.Store, error)) {
	const nodes, runs = 1000, 20000
	for range b.N {
		b.StopTimer()
		ctx, cancel := context.WithCancel(context.Background())
		st, err := open(ctx)
		if err != nil {
			b.Fatal(err)
		}
		st.EnsureWorkspace(ctx, "default")
		box, _ := secret.NewBox(make([]byte, secret.KeySize))
		d := New(st, box, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, Options{})
		if err := d.Load(ctx); err != nil {
			b.Fatal(err)
		}
		go d.Run(ctx)
		for i := range nodes {
			id := fmt.Sprintf("sim-%04d", i)
			if err := d.AddNode(ctx, store.Node{ID: id, Workspace: "default", Compute: "sim", TokenHash: id}); err != nil {
				b.Fatal(err)
			}
			if _, err := d.Hello(ctx, id, api.AgentHello{Cores: 2, MemoryGB: 8}); err != nil {
				b.Fatal(err)
			}
		}
		var done atomic.Int64
		finished := make(chan struct{})
		var wg sync.WaitGroup
		for i := range nodes {
			id := fmt.Sprintf("sim-%04d", i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					work, wake, err := d.Poll(ctx, id, nil, 0)
					if err != nil {
						return
					}
					for _, as := range work.Assignments {
						ref := api.AttemptRef{RunID: as.RunID, Attempt: as.Attempt}
						d.Report(ctx, id, ref, api.AttemptReport{Status: api.RunRunning})
						zero := 0
						d.Report(ctx, id, ref, api.AttemptReport{Status: api.RunCompleted, ExitCode: &zero})
						if done.Add(1) == runs {
							close(finished)
						}
					}
					if len(work.Assignments) == 0 {
						select {
						case <-wake:
						case <-ctx.Done():
						}
					}
				}
			}()
		}
		b.StartTimer()
		start := time.Now()
		var sw sync.WaitGroup
		for w := range 8 {
			sw.Add(1)
			go func() {
				defer sw.Done()
				for i := w; i < runs; i += 8 {
					r := store.Run{Workspace: "default", Run: api.Run{Compute: "sim", Command: []string{"true"},
						NodeCount: 1, Resources: api.Resources{Cores: 1}, CreatedBy: "bench", Attempts: []api.Attempt{}}}
					if _, err := d.Submit(ctx, r); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		sw.Wait()
		<-finished
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(runs/elapsed.Seconds(), "runs/s")
		cancel()
		wg.Wait()
		st.Close()
		b.StartTimer()
	}
}
