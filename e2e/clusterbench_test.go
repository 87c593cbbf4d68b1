package e2e

import (
	"encoding/json"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// Scale from zero has one implementation, figure 4 of paddock-bench
// (internal/bench); these are the cluster figures it does not have.

// BenchmarkIdleToGone runs one run on a cluster with a 1 s idle time and
// reports how long after the idle deadline (run end + 1 s) the node is gone
// from the cluster (drained, agent stopped, removed), as seen by a client
// polling `compute nodes` every 5 ms.
func BenchmarkIdleToGone(b *testing.B) {
	c := benchClient(b)
	ctx := benchContext(b)
	props, _ := json.Marshal(map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 1, "idle_seconds_before_scaledown": 1})
	if _, err := c.CreateCompute(ctx, api.ComputeCreate{Name: "idle-bench", Type: "cluster", Properties: props}); err != nil {
		b.Fatal(err)
	}
	c.WaitCompute(ctx, "idle-bench", false, nil)
	var lat []time.Duration
	for b.Loop() {
		r, err := c.SubmitRun(ctx, api.RunSubmit{Compute: "idle-bench", Command: []string{"true"}}, "")
		if err != nil {
			b.Fatal(err)
		}
		done, err := c.WaitRun(ctx, r.ID, nil)
		if err != nil || done.Status != api.RunCompleted {
			b.Fatalf("%+v %v", done, err)
		}
		deadline := done.EndedAt.Add(time.Second)
		giveUp := time.Now().Add(30 * time.Second)
		for {
			nodes, err := c.ListNodes(ctx, "idle-bench")
			if err != nil {
				b.Fatal(err)
			}
			if len(nodes) == 0 {
				break
			}
			if time.Now().After(giveUp) {
				b.Fatalf("the idle node was not removed within 30 s: %+v", nodes)
			}
			time.Sleep(5 * time.Millisecond)
		}
		lat = append(lat, time.Since(deadline))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkRemoteSubmitToRunning attaches a machine over SSH (a real sshd
// on loopback) and submits at once, so the first run waits for the agent
// install; then 20 more runs on the warm agent. It reports created_at →
// started_at of the first run and the p50 of the later ones.
func BenchmarkRemoteSubmitToRunning(b *testing.B) {
	for b.Loop() {
		e := newEnv(b)
		e.up()
		port := freeLoopbackPort(b)
		sd := startSSHD(b, b.TempDir(), port, false)
		cfgData, _ := os.ReadFile(e.config)
		var cfg struct{ Server, Token, Workspace string }
		json.Unmarshal(cfgData, &cfg)
		c := api.NewClient(cfg.Server, cfg.Token, cfg.Workspace)
		ctx := benchContext(b)
		key, _ := os.ReadFile(sd.keyFile)
		props, _ := json.Marshal(map[string]any{"address": "127.0.0.1", "ssh_port": port, "username": keyUser, "private_key": string(key)})
		if _, err := c.CreateCompute(ctx, api.ComputeCreate{Name: "bench-box", Type: "remote", Properties: props}); err != nil {
			b.Fatal(err)
		}
		c.WaitCompute(ctx, "bench-box", false, nil)
		var lat []time.Duration
		for i := range 21 {
			r, err := c.SubmitRun(ctx, api.RunSubmit{Compute: "bench-box", Command: []string{"true"}}, "")
			if err != nil {
				b.Fatal(err)
			}
			done, err := c.WaitRun(ctx, r.ID, nil)
			if err != nil || done.Status != api.RunCompleted {
				b.Fatalf("%+v %v", done, err)
			}
			d := done.StartedAt.Sub(done.CreatedAt)
			if i == 0 {
				b.ReportMetric(float64(d.Microseconds())/1000, "first-ms")
				continue
			}
			lat = append(lat, d)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "later-p50-ms")
		c.DeleteCompute(ctx, "bench-box", false)
		c.WaitCompute(ctx, "bench-box", true, nil)
	}
}
