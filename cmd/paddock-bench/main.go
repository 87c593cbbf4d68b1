// Command paddock-bench starts real Paddock servers and measures what users
// feel: submit-to-Running latency, placements per second with many nodes,
// the cost of 10,000 heartbeating nodes, scale-from-zero, API throughput,
// plain Slurm on the same machine, (with -store postgres://…) the time a
// replica takes to replace a killed leader, and runs through a Kubernetes
// target beside bare Jobs made with kubectl. It prints a table; `--smoke` runs a
// tiny version (for CI: it checks the bench runs, not the numbers).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/paddock-ml/paddock/internal/bench"
)

func main() {
	var cfg bench.Config
	flag.StringVar(&cfg.Paddock, "paddock", "", "paddock binary (default: build ./cmd/paddock)")
	flag.BoolVar(&cfg.Smoke, "smoke", false, "tiny sizes: check that every figure runs")
	flag.DurationVar(&cfg.HeartbeatWindow, "heartbeat-window", 0, "how long figure 3's nodes heartbeat (default 2m; smoke 5s)")
	flag.IntVar(&cfg.HeartbeatNodes, "heartbeat-nodes", 0, "how many simulated nodes figure 3 runs (default 50,000; smoke 200)")
	flag.IntVar(&cfg.PlacementRuns, "placement-runs", 0, "how many runs figure 2 submits in each half (default 50,000; smoke 400)")
	flag.StringVar(&cfg.ProfileDir, "profile-dir", "", "write CPU profiles of the server during figures 1 (16 submitters), 2, 3 and 5 here (go tool pprof -top FILE)")
	flag.StringVar(&cfg.Store, "store", "", "keep the servers' workspaces in this PostgreSQL database (postgres://…), each in a schema of its own, instead of SQLite; figure 7 (failover) needs it")
	only := flag.String("only", "", "run just these figures, e.g. 2,5 (default: all)")
	flag.Parse()
	for _, f := range strings.FieldsFunc(*only, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 8 {
			fmt.Fprintf(os.Stderr, "paddock-bench: --only takes figure numbers 1 to 8, not %q\n", f)
			os.Exit(2)
		}
		cfg.Only = append(cfg.Only, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg.Out, cfg.Progress = os.Stdout, os.Stderr
	if err := bench.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "paddock-bench:", err)
		os.Exit(1)
	}
}
