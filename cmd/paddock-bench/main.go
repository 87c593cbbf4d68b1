// Command paddock-bench starts real Paddock servers and measures what users
// feel: submit-to-Running latency, placements per second with many nodes,
// the cost of 10,000 heartbeating nodes, scale-from-zero, API throughput,
// and plain Slurm on the same machine. It prints a table; `--smoke` runs a
// tiny version (for CI: it checks the bench runs, not the numbers).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/paddock-ml/paddock/internal/bench"
)

func main() {
	var cfg bench.Config
	flag.StringVar(&cfg.Paddock, "paddock", "", "paddock binary (default: build ./cmd/paddock)")
	flag.BoolVar(&cfg.Smoke, "smoke", false, "tiny sizes: check that every figure runs")
	flag.DurationVar(&cfg.HeartbeatWindow, "heartbeat-window", 0, "how long 10,000 nodes heartbeat (default 2m; smoke 5s)")
	flag.StringVar(&cfg.ProfileDir, "profile-dir", "", "write CPU profiles of the server during figures 2 and 5 here (go tool pprof -top FILE)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg.Out = os.Stdout
	if err := bench.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "paddock-bench:", err)
		os.Exit(1)
	}
}
