package e2e

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// benchClient starts a server and returns an API client for it, once the
// local node is ready.
func benchClient(b *testing.B) *api.Client {
	e := newEnv(b)
	e.up()
	data, err := os.ReadFile(e.config)
	if err != nil {
		b.Fatal(err)
	}
	var cfg struct{ Server, Token, Workspace string }
	json.Unmarshal(data, &cfg)
	c := api.NewClient(cfg.Server, cfg.Token, cfg.Workspace)
	ctx := benchContext(b)
	// Warm up: the node registers and the first run pays one-off costs.
	for range 3 {
		r, err := c.SubmitRun(ctx, api.RunSubmit{Compute: "local", Command: []string{"true"}}, "")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.WaitRun(ctx, r.ID, nil); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// benchContext bounds what a benchmark waits for (WaitRun, WaitCompute): a
// run that never ends fails the benchmark instead of hanging it.
func benchContext(b testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkQueuedThroughput queues 1,000 runs of `true` (8 concurrent
// submitters) and reports runs completed per second from the first submit
// to the last run's end.
func BenchmarkQueuedThroughput(b *testing.B) {
	c := benchClient(b)
	ctx := benchContext(b)
	for b.Loop() {
		const n = 1000
		ids := make(chan string, n)
		start := time.Now()
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 8 {
					r, err := c.SubmitRun(ctx, api.RunSubmit{Compute: "local", Command: []string{"true"}}, "")
					if err != nil {
						b.Error(err)
						return
					}
					ids <- r.ID
				}
			}()
		}
		wg.Wait()
		close(ids)
		submitted := time.Since(start)
		var last time.Time
		for id := range ids {
			r, err := c.WaitRun(ctx, id, nil)
			if err != nil || r.Status != api.RunCompleted {
				b.Fatalf("run %s: %+v %v", id, r, err)
			}
			if r.EndedAt.After(last) {
				last = *r.EndedAt
			}
		}
		total := time.Since(start)
		b.ReportMetric(n/total.Seconds(), "runs/s")
		b.ReportMetric(n/submitted.Seconds(), "submits/s")
	}
}
