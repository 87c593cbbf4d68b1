package studio

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// The studio's pages are rendered on the server, so their time is the
// studio's: these time a page from the request to its last byte,
// in-process (no network, no browser), over a real SQLite file.
// BENCHMARKS.md records them:
//
//	go test -run '^$' -bench 'Page' -benchtime 200x ./internal/studio/

// timePage serves path b.N times and reports the median and 90th
// percentile in milliseconds.
func timePage(b *testing.B, f *fixture, path, want string) {
	b.Helper()
	if rec := f.get(path); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
		b.Fatalf("%s: %d, want 200 with %q\n%.2000s", path, rec.Code, want, rec.Body)
	}
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		rec := f.get(path)
		took = append(took, time.Since(start))
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d", path, rec.Code)
		}
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[len(took)*9/10]), "p90-ms")
}

// BenchmarkComputesPage1000 is the compute list with 1,000 clusters: the
// store read, the live node counts, the rows rendered.
func BenchmarkComputesPage1000(b *testing.B) {
	f := newFixture(b)
	for i := range 1000 {
		props, _ := json.Marshal(map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 4, "tags": map[string]string{"i": fmt.Sprint(i)}})
		if _, err := f.targets.CreateCompute(f.ctx, "default", "admin", api.ComputeCreate{Name: fmt.Sprintf("cluster-%04d-x", i), Type: "cluster", Properties: props}); err != nil {
			b.Fatal(err)
		}
	}
	timePage(b, f, "/ws/default/computes", `id="c-cluster-0999-x"`)
}

// runsFixture is the studio over a workspace of n ended runs, on two
// targets, in ten experiments, by three users.
func runsFixture(b testing.TB, n int) *fixture {
	f := newFixture(b)
	statuses := []api.RunStatus{api.RunCompleted, api.RunFailed, api.RunCanceled}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]store.Run, 0, 5000)
	for i := 1; i <= n; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		end := at.Add(time.Minute)
		batch = append(batch, store.Run{Workspace: "default", Seq: int64(i), Run: api.Run{
			ID: fmt.Sprintf("run-%06d", i), Experiment: fmt.Sprintf("exp-%d", i%10), Compute: []string{"local", "cpu"}[i%2],
			Command: []string{"python3", "train.py", "--epochs", "10"}, NodeCount: 1, ProcessCountPerNode: 1, Distribution: "none",
			Resources: api.Resources{Cores: 1}, Status: statuses[i%3], Attempt: 1, CreatedBy: []string{"admin", "ana", "bob"}[i%3],
			CreatedAt: at, StartedAt: &at, EndedAt: &end,
		}})
		if len(batch) == cap(batch) || i == n {
			if err := f.st.SaveBatch(f.ctx, batch, nil, nil); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return f
}

// BenchmarkRunsPage100k is the runs list of a workspace with 100,000
// runs: its first page, a page deep in it, and a filtered page.
func BenchmarkRunsPage100k(b *testing.B) {
	f := runsFixture(b, 100_000)
	b.Run("first", func(b *testing.B) { timePage(b, f, "/ws/default/runs", "run-100000") })
	b.Run("deep", func(b *testing.B) { timePage(b, f, "/ws/default/runs?before=20000", "run-019999") })
	b.Run("filtered", func(b *testing.B) {
		timePage(b, f, "/ws/default/runs?experiment=exp-3&status=Failed&user=ana", "run-099973")
	})
}
