package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// BenchmarkVersusSlurm runs the same workload — 200 trivial jobs, submitted
// as fast as one client can — through plain Slurm (`sbatch --wrap`, on the
// cluster scripts/dev-slurm.sh starts) and through Paddock's local target,
// and reports for each: submissions per second, submit-to-start p50/p99
// and jobs completed per second.
func BenchmarkVersusSlurm(b *testing.B) {
	conf := os.Getenv("SLURM_CONF")
	if conf == "" {
		conf = "/tmp/paddock-slurm/etc/slurm.conf"
	}
	if exec.Command("env", "SLURM_CONF="+conf, "scontrol", "ping").Run() != nil {
		b.Skip("no Slurm cluster: run `bash scripts/dev-slurm.sh start`")
	}
	const n = 200
	for b.Loop() {
		// Slurm: each job writes its start time; the client notes submit times.
		dir := b.TempDir()
		os.Chmod(dir, 0o777)
		submitted := make([]time.Time, n)
		start := time.Now()
		for i := range n {
			submitted[i] = time.Now()
			out := filepath.Join(dir, strconv.Itoa(i))
			cmd := exec.Command("sbatch", "--parsable", "-o", "/dev/null", "--wrap", "date +%s.%N > "+out)
			cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
			if o, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("sbatch: %v %s", err, o)
			}
		}
		submitRate := n / time.Since(start).Seconds()
		var lat []time.Duration
		var last time.Time
		for i := range n {
			f := filepath.Join(dir, strconv.Itoa(i))
			deadline := time.Now().Add(5 * time.Minute)
			for {
				data, err := os.ReadFile(f)
				if err == nil && len(strings.TrimSpace(string(data))) > 0 {
					sec, _ := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
					t := time.Unix(0, int64(sec*1e9))
					lat = append(lat, t.Sub(submitted[i]))
					if t.After(last) {
						last = t
					}
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("slurm job %d never started", i)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(submitRate, "slurm-submits/s")
		b.ReportMetric(float64(percentile(lat, 0.5).Milliseconds()), "slurm-p50-ms")
		b.ReportMetric(float64(percentile(lat, 0.99).Milliseconds()), "slurm-p99-ms")
		b.ReportMetric(n/last.Sub(start).Seconds(), "slurm-started/s")

		// Paddock, local target, the same number of trivial runs.
		c := benchClient(b)
		ctx := benchContext(b)
		ids := make([]string, n)
		start = time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range n {
			r, err := c.SubmitRun(ctx, api.RunSubmit{Compute: "local", Command: []string{"true"}}, "")
			if err != nil {
				b.Fatal(err)
			}
			mu.Lock()
			ids[i] = r.ID
			mu.Unlock()
		}
		submitRate = n / time.Since(start).Seconds()
		wg.Wait()
		lat = lat[:0]
		last = time.Time{}
		for _, id := range ids {
			r, err := c.WaitRun(ctx, id, nil)
			if err != nil || r.Status != api.RunCompleted {
				b.Fatalf("%+v %v", r, err)
			}
			lat = append(lat, r.StartedAt.Sub(r.CreatedAt))
			if r.StartedAt.After(last) {
				last = *r.StartedAt
			}
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(submitRate, "paddock-submits/s")
		b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "paddock-p50-ms")
		b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "paddock-p99-ms")
		b.ReportMetric(n/last.Sub(start).Seconds(), "paddock-started/s")
	}
}

var _ = json.Marshal
var _ = fmt.Sprint
