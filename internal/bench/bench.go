// Package bench is the benchmark suite behind cmd/paddock-bench: each
// figure starts from a real `paddock up` and measures through the public
// API, the way users and agents reach the server.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store/pgschema"
)

// Config says what to run.
type Config struct {
	Paddock         string
	Smoke           bool
	HeartbeatWindow time.Duration
	// HeartbeatNodes is how many simulated nodes figure 3 runs (default
	// 50,000; smoke 200).
	HeartbeatNodes int
	// PlacementRuns is how many runs figure 2 submits in each half
	// (default 50,000; smoke 400).
	PlacementRuns int
	// ProfileDir, when set, receives CPU profiles of the server during the
	// figures whose targets are hard (1's 16 submitters, 2, 3, 5):
	// <figure>.pprof.
	ProfileDir string
	// Only, when set, runs just these figures (1 to 8).
	Only []int
	// Store, when set, is a PostgreSQL database (postgres://…) the servers
	// keep their workspace in, each in a schema of its own, instead of
	// SQLite; figure 7 (failover) needs it.
	Store string
	Out   io.Writer
	// Progress, when set, receives each figure's rows as it finishes, so
	// a run that fails later still shows what it measured.
	Progress io.Writer
}

// row is one line of the result table.
type row struct{ figure, result, target, conditions string }

// Run runs every figure and prints the table.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Paddock == "" {
		dir, err := os.MkdirTemp("", "paddock-bench-bin")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.Paddock = filepath.Join(dir, "paddock")
		build := exec.Command("go", "build", "-o", cfg.Paddock, "./cmd/paddock")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("building paddock: %v\n%s", err, out)
		}
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return err
		}
	}
	if cfg.HeartbeatWindow == 0 {
		cfg.HeartbeatWindow = 2 * time.Minute
		if cfg.Smoke {
			cfg.HeartbeatWindow = 5 * time.Second
		}
	}
	started := time.Now()
	var rows []row
	for i, f := range []func(context.Context, Config) ([]row, error){figureLatency, figurePlacements, figureHeartbeats, figureScaleFromZero, figureAPI, figureSlurm, figureFailover, figureKubernetes} {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, i+1) {
			continue
		}
		r, err := f(ctx, cfg)
		if err != nil {
			return fmt.Errorf("figure %d: %w", i+1, err)
		}
		rows = append(rows, r...)
		if cfg.Progress != nil {
			for _, r := range r {
				fmt.Fprintf(cfg.Progress, "%s: %s (%s)\n", r.figure, r.result, r.target)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	fmt.Fprintf(cfg.Out, "\n| figure | result | target | conditions |\n|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(cfg.Out, "| %s | %s | %s | %s |\n", r.figure, r.result, r.target, r.conditions)
	}
	fmt.Fprintf(cfg.Out, "\n%d cores (%s/%s), %s store, %s in all", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cfg.storeName(), time.Since(started).Round(time.Second))
	if cfg.Smoke {
		fmt.Fprint(cfg.Out, "; SMOKE sizes: the numbers mean nothing")
	}
	fmt.Fprintln(cfg.Out)
	return nil
}

// storeName says which store the servers use.
func (cfg Config) storeName() string {
	if cfg.Store == "" {
		return "SQLite"
	}
	return "PostgreSQL"
}

// server is a running `paddock up`.
type server struct {
	cmd      *exec.Cmd
	dir      string
	client   *api.Client
	url      string
	pprofURL string // set with Config.ProfileDir
	// store is the server's PostgreSQL store ("": SQLite); dropStore
	// removes its schema (nil for a replica sharing another's).
	store     string
	dropStore func(context.Context) error
	keepDir   bool // a replica sharing another server's data dir
}

// profile records a CPU profile of the server for d into the profile dir
// as name.pprof, in the background; wait returns when it is written.
func (s *server) profile(cfg Config, name string, d time.Duration) (wait func()) {
	if s.pprofURL == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.pprofURL, int(d.Seconds())))
		if err != nil {
			fmt.Fprintln(os.Stderr, "paddock-bench: profile:", err)
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(filepath.Join(cfg.ProfileDir, name+".pprof"), data, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "paddock-bench: profile:", err)
		}
	}()
	return func() { <-done }
}

// freeAddr is a loopback address with a port free now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startServer(ctx context.Context, cfg Config, extra ...string) (*server, error) {
	dir, err := os.MkdirTemp("", "paddock-bench")
	if err != nil {
		return nil, err
	}
	var dsn string
	var drop func(context.Context) error
	if cfg.Store != "" {
		if dsn, drop, err = pgschema.New(ctx, cfg.Store); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("making a schema in -store: %w", err)
		}
	}
	s, err := startIn(ctx, cfg, dir, dsn, "config", extra...)
	if err != nil {
		if drop != nil {
			drop(context.WithoutCancel(ctx))
		}
		os.RemoveAll(dir)
		return nil, err
	}
	s.store, s.dropStore = dsn, drop
	return s, nil
}

// startIn starts `paddock up` on dir's data dir, on the PostgreSQL store
// dsn when set, writing its CLI config to dir/config.
func startIn(ctx context.Context, cfg Config, dir, dsn, config string, extra ...string) (*server, error) {
	args := append([]string{"up", "--sim", "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--log-level", "warn"}, extra...)
	if dsn != "" {
		args = append(args, "--store", dsn)
	}
	var pprofURL string
	if cfg.ProfileDir != "" {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		args = append(args, "--pprof-listen", addr)
		pprofURL = "http://" + addr
	}
	s := &server{cmd: exec.CommandContext(ctx, cfg.Paddock, args...), dir: dir, pprofURL: pprofURL}
	s.cmd.Env = append(os.Environ(), "PADDOCK_CONFIG="+filepath.Join(dir, config), "HOME="+dir)
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	// --log-level warn hides the serving line: poll the config instead.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(filepath.Join(dir, config))
		if err == nil {
			var c struct{ Server, Token string }
			if json.Unmarshal(data, &c) == nil && c.Server != "" {
				// A replica lists itself first, then the others.
				self := api.Servers(c.Server)[0]
				if resp, err := http.Get(self + "/healthz"); err == nil {
					resp.Body.Close()
					s.url = self
					s.client = api.NewClient(self, c.Token, "default")
					return s, nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	return nil, errors.New("paddock up did not start in 30 s")
}

// stop ends the server and every agent it started.
func (s *server) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
		}
	}
	pids, _ := filepath.Glob(filepath.Join(s.dir, "data", "*", "agent.pid"))
	more, _ := filepath.Glob(filepath.Join(s.dir, "data", "nodes", "*", "agent.pid"))
	for _, f := range append(pids, more...) {
		if data, err := os.ReadFile(f); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(data))); pid > 0 {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
		}
	}
	if s.dropStore != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		s.dropStore(ctx)
		cancel()
	}
	if !s.keepDir {
		os.RemoveAll(s.dir)
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
}

func size(cfg Config, full, smoke int) int {
	if cfg.Smoke {
		return smoke
	}
	return full
}

// figureLatency: submit → Running on the warm local node.
func figureLatency(ctx context.Context, cfg Config) ([]row, error) {
	s, err := startServer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	n := size(cfg, 200, 10)
	var lat []time.Duration
	for i := range n + 3 {
		r, err := s.client.SubmitRun(ctx, api.RunSubmit{Compute: "local", Command: []string{"true"}}, "")
		if err != nil {
			return nil, err
		}
		done, err := s.client.WaitRun(ctx, r.ID, nil)
		if err != nil {
			return nil, err
		}
		if done.Status != api.RunCompleted {
			return nil, fmt.Errorf("run %s ended %s: %s", r.ID, done.Status, done.Error)
		}
		if i >= 3 { // the first runs warm the node up
			lat = append(lat, done.StartedAt.Sub(done.CreatedAt))
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	rows := []row{{"1. submit → Running, warm local node", "p50 " + ms(percentile(lat, .5)) + ", p99 " + ms(percentile(lat, .99)),
		"p50 ≤ 20 ms, p99 ≤ 100 ms", fmt.Sprintf("%d sequential runs of `true`; started_at − created_at (server timestamps)", n)}}
	concurrent, err := latencyConcurrent(ctx, cfg, s, size(cfg, 800, 32))
	if err != nil {
		return nil, err
	}
	ends, err := endOfRun(ctx, s, size(cfg, 100, 5), size(cfg, 50, 3))
	if err != nil {
		return nil, err
	}
	return append(rows, concurrent, ends), nil
}

// runLatency submits a run and waits for its end; it returns the run.
func runLatency(ctx context.Context, c *api.Client, in api.RunSubmit) (*api.Run, error) {
	r, err := c.SubmitRun(ctx, in, "")
	if err != nil {
		return nil, err
	}
	done, err := c.WaitRun(ctx, r.ID, nil)
	if err != nil {
		return nil, err
	}
	if done.Status != api.RunCompleted || done.StartedAt == nil || done.EndedAt == nil {
		return nil, fmt.Errorf("run %s ended %s: %s", r.ID, done.Status, done.Error)
	}
	return done, nil
}

// latencyConcurrent: 16 clients each submit a small run of `true` and
// wait for it, n runs in all; a tenth of a core each, so they never queue
// for cores on the 2-core local node and the latency is the server's and
// the agent's.
func latencyConcurrent(ctx context.Context, cfg Config, s *server, n int) (row, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var next atomic.Int64
	in := api.RunSubmit{Compute: "local", Command: []string{"true"}, Resources: &api.Resources{Cores: 0.1}}
	cpu0 := s.cpuSplit()
	began := time.Now()
	profiled := s.profile(cfg, "1-concurrent-submit", time.Duration(size(cfg, 3, 1))*time.Second)
	defer profiled()
	err := hammer(func() bool { return next.Add(1) <= int64(n) }, func() error {
		done, err := runLatency(ctx, s.client, in)
		if err != nil {
			return err
		}
		mu.Lock()
		lat = append(lat, done.StartedAt.Sub(done.CreatedAt))
		mu.Unlock()
		return nil
	})
	if err != nil {
		return row{}, err
	}
	took := time.Since(began)
	used := s.cpuSplit().minus(cpu0)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return row{"1. submit → Running, 16 concurrent submitters", "p50 " + ms(percentile(lat, .5)) + ", p99 " + ms(percentile(lat, .99)),
		"p50 ≤ 5 ms, p99 ≤ 15 ms", fmt.Sprintf("%d runs of `true` (0.1 core each, so none waits for cores) from %d clients, each waiting for its run's end before the next; started_at − created_at; %.0f runs/s; CPU per run: %s", n, clients, float64(n)/took.Seconds(), used.perRun(n))}, nil
}

// endOfRun: submit → Completed (ended_at − created_at) for trivial runs
// back to back, and for runs that arrive after an idle second each.
func endOfRun(ctx context.Context, s *server, hot, cold int) (row, error) {
	measure := func(n int, gap time.Duration) (time.Duration, error) {
		var lat []time.Duration
		for range n {
			if gap > 0 {
				select {
				case <-ctx.Done():
					return 0, ctx.Err()
				case <-time.After(gap):
				}
			}
			done, err := runLatency(ctx, s.client, api.RunSubmit{Compute: "local", Command: []string{"true"}})
			if err != nil {
				return 0, err
			}
			lat = append(lat, done.EndedAt.Sub(done.CreatedAt))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return percentile(lat, .5), nil
	}
	back, err := measure(hot, 0)
	if err != nil {
		return row{}, err
	}
	idle, err := measure(cold, time.Second)
	if err != nil {
		return row{}, err
	}
	return row{"1. end of run: submit → Completed", "p50 " + ms(back) + " back to back, " + ms(idle) + " after idle gaps",
		"after idle gaps as fast as back to back", fmt.Sprintf("runs of `true` on the warm local node: %d one after another, then %d each after 1 s idle; ended_at − created_at", hot, cold)}, nil
}

// createSimCluster makes a sim cluster of n nodes and waits until all are idle.
func createSimCluster(ctx context.Context, s *server, name, vmSize string, n int) error {
	props, _ := json.Marshal(map[string]any{"vm_size": vmSize, "max_nodes": n, "min_nodes": n, "provider": "sim",
		"idle_seconds_before_scaledown": 3600})
	if _, err := s.client.CreateCompute(ctx, api.ComputeCreate{Name: name, Type: "cluster", Properties: props}); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		c, err := s.client.GetCompute(ctx, name)
		if err != nil {
			return err
		}
		var st struct {
			NodeStateCounts map[string]int `json:"node_state_counts"`
		}
		json.Unmarshal(c.Status, &st)
		if st.NodeStateCounts["idle"]+st.NodeStateCounts["running"] >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("cluster %s did not reach %d nodes", name, n)
}

// clients is how many API clients a load figure runs at once.
const clients = 16

// hammer calls op from 16 goroutines for as long as more says so and
// returns the first error, which stops the goroutine that got it.
func hammer(more func() bool, op func() error) error {
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for more() {
				if err := op(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	err, _ := firstErr.Load().(error)
	return err
}

// submitMany submits n runs from 16 clients and returns how long that
// took and the id of the last run submitted.
func submitMany(ctx context.Context, c *api.Client, n int, in api.RunSubmit) (time.Duration, string, error) {
	start := time.Now()
	var next atomic.Int64
	var last atomic.Value
	err := hammer(func() bool { return next.Add(1) <= int64(n) }, func() error {
		r, err := c.SubmitRun(ctx, in, "")
		if err == nil {
			last.Store(r.ID)
		}
		return err
	})
	if err != nil {
		return 0, "", err
	}
	id, _ := last.Load().(string)
	return time.Since(start), id, nil
}

// figurePlacements: sustained placements per second with 1,000 sim nodes.
func figurePlacements(ctx context.Context, cfg Config) ([]row, error) {
	s, err := startServer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	nodes, runs := size(cfg, 1000, 20), cfg.PlacementRuns
	if runs == 0 {
		runs = size(cfg, 50000, 400)
	}
	if err := createSimCluster(ctx, s, "sim-pool", "STANDARD_D5_V2", nodes); err != nil {
		return nil, err
	}
	start := time.Now()
	profiled := s.profile(cfg, "2-placements", time.Duration(size(cfg, 30, 1))*time.Second)
	submitTime, lastID, err := submitMany(ctx, s.client, runs, api.RunSubmit{Compute: "sim-pool", Command: []string{"sleep", "1"}})
	if err != nil {
		return nil, err
	}
	profiled()
	last, err := s.client.WaitRun(ctx, lastID, nil)
	if err != nil {
		return nil, err
	}
	span := last.StartedAt.Sub(start)
	// The blockers must outlast queueing the backlog: three times as long
	// as the same submissions just took (submitting into a deep queue may
	// be slower than into one that drains), and at least 90 s.
	hold := max(time.Duration(size(cfg, 90, 5))*time.Second, submitTime*3+10*time.Second).Round(time.Second)
	backlog, err := placeBacklog(ctx, s, cfg, nodes, runs, hold)
	if err != nil {
		return nil, err
	}
	return []row{
		{"2. durable placements/s, while submitting", fmt.Sprintf("%.0f /s", float64(runs)/span.Seconds()), "≥ 2,000 /s, then towards 5,000",
			fmt.Sprintf("%d sim nodes of 16 cores (STANDARD_D5_V2), %d one-second runs submitted by %d API clients (%.0f submits/s), every state change committed; from the first submit to the last run's start (FIFO: it is placed last)", nodes, runs, clients, float64(runs)/submitTime.Seconds())},
		backlog,
	}, nil
}

// placeBacklog measures placements from a queue: every node of the
// cluster is taken by a 16-core blocker run lasting hold, n one-second
// runs queue behind them, and the rate is n over the time from the first
// blocker's end to the last queued run's start.
func placeBacklog(ctx context.Context, s *server, cfg Config, nodes, n int, hold time.Duration) (row, error) {
	secs := strconv.FormatFloat(hold.Seconds(), 'f', -1, 64)
	blocker := api.RunSubmit{Compute: "sim-pool", Command: []string{"true"}, Env: map[string]string{"SIM_SECONDS": secs}, Resources: &api.Resources{Cores: 16}}
	first, err := s.client.SubmitRun(ctx, blocker, "")
	if err != nil {
		return row{}, err
	}
	if _, _, err := submitMany(ctx, s.client, nodes-1, blocker); err != nil {
		return row{}, err
	}
	started := first
	for started.StartedAt == nil {
		if started, err = s.client.WatchRun(ctx, first.ID, started.Status); err != nil {
			return row{}, err
		}
	}
	profiled := s.profile(cfg, "2-backlog", time.Duration(size(cfg, 30, 1))*time.Second)
	submitTime, lastID, err := submitMany(ctx, s.client, n, api.RunSubmit{Compute: "sim-pool", Command: []string{"sleep", "1"}})
	if err != nil {
		return row{}, err
	}
	profiled()
	release := started.StartedAt.Add(hold)
	if time.Now().After(release) {
		return row{}, fmt.Errorf("placements from a backlog: submitting %d runs took %s, longer than the blockers' %s", n, submitTime.Round(time.Second), hold)
	}
	last, err := s.client.WaitRun(ctx, lastID, nil)
	if err != nil {
		return row{}, err
	}
	span := last.StartedAt.Sub(release)
	return row{"2. durable placements/s, from a backlog", fmt.Sprintf("%.0f /s", float64(n)/span.Seconds()), "≥ 2,000 /s, then towards 5,000",
		fmt.Sprintf("the same %d nodes each held by a 16-core blocker run; %d one-second runs queued behind them; from the first blocker's end to the last queued run's start (%s)", nodes, n, span.Round(time.Millisecond))}, nil
}

// cpuUse is CPU time spent so far: by the server, by its agent processes
// and by the whole machine.
type cpuUse struct{ server, agents, machine time.Duration }

// cpuSplit reads the CPU time of the server, of the agents it started
// (processes whose command line is `paddock agent` under its directory)
// and of every process on the machine.
func (s *server) cpuSplit() cpuUse {
	var u cpuUse
	u.server, _ = procStats(s.cmd.Process.Pid)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(cmdline), "\x00")
		if err == nil && len(args) > 1 && args[1] == "agent" && strings.Contains(string(cmdline), s.dir) {
			cpu, _ := procStats(pid)
			u.agents += cpu
		}
	}
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal
		for i, v := range f[1:min(len(f), 9)] {
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			u.machine += time.Duration(n) * 10 * time.Millisecond
		}
	}
	return u
}

func (u cpuUse) minus(v cpuUse) cpuUse {
	return cpuUse{u.server - v.server, u.agents - v.agents, u.machine - v.machine}
}

// perRun says how much CPU each of n runs cost, by whom.
func (u cpuUse) perRun(n int) string {
	each := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000/float64(n)) }
	return fmt.Sprintf("%s on the machine (server %s, local agent %s, the rest: run processes, the 16 clients, the kernel)", each(u.machine), each(u.server), each(u.agents))
}

// procStats reads a process's CPU time and resident memory.
func procStats(pid int) (cpu time.Duration, rss int64) {
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			k, _ := strconv.ParseInt(f[12], 10, 64)
			cpu = time.Duration(u+k) * 10 * time.Millisecond // USER_HZ = 100 on Linux
		}
	}
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return cpu, rss
}

// pollQuantile reads the poll-handling histogram from /metrics and returns
// the q quantile of the observations since base (bucket upper bound).
func pollHistogram(url string) (map[float64]float64, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[float64]float64{}
	sc := bufio.NewScanner(resp.Body)
	re := regexp.MustCompile(`^paddock_agent_poll_handling_seconds_bucket\{le="([^"]+)"\} (\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			le, _ := strconv.ParseFloat(m[1], 64)
			if m[1] == "+Inf" {
				le = 1e9
			}
			v, _ := strconv.ParseFloat(m[2], 64)
			out[le] = v
		}
	}
	return out, sc.Err()
}

func quantile(before, after map[float64]float64, q float64) (float64, float64) {
	var les []float64
	for le := range after {
		les = append(les, le)
	}
	sort.Float64s(les)
	total := after[1e9] - before[1e9]
	for _, le := range les {
		if after[le]-before[le] >= q*total {
			return le, total
		}
	}
	return les[len(les)-1], total
}

// figureHeartbeats: 10,000 sim nodes heartbeating: server CPU, RSS and
// heartbeat handling time.
func figureHeartbeats(ctx context.Context, cfg Config) ([]row, error) {
	heartbeat := 10 * time.Second
	if cfg.Smoke {
		heartbeat = time.Second // so that the short smoke window sees polls
	}
	s, err := startServer(ctx, cfg, "--sim-poll-wait", "0", "--sim-heartbeat", heartbeat.String())
	if err != nil {
		return nil, err
	}
	defer s.stop()
	n := cfg.HeartbeatNodes
	if n == 0 {
		n = size(cfg, 50000, 200)
	}
	t0 := time.Now()
	// A cluster holds at most 10,000 nodes: the fleet is several.
	for i, left := 0, n; left > 0; i, left = i+1, left-10000 {
		if err := createSimCluster(ctx, s, fmt.Sprintf("sim-fleet-%c", 'a'+i), "STANDARD_D2_V2", min(left, 10000)); err != nil {
			return nil, err
		}
	}
	ramp := time.Since(t0)
	pid := s.cmd.Process.Pid
	before, err := pollHistogram(s.url)
	if err != nil {
		return nil, err
	}
	cpu0, _ := procStats(pid)
	var maxRSS int64
	start := time.Now()
	profiled := s.profile(cfg, "3-heartbeats", min(cfg.HeartbeatWindow, 30*time.Second))
	defer profiled()
	for time.Since(start) < cfg.HeartbeatWindow {
		_, rss := procStats(pid)
		maxRSS = max(maxRSS, rss)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	cpu1, _ := procStats(pid)
	after, err := pollHistogram(s.url)
	if err != nil {
		return nil, err
	}
	p99, count := quantile(before, after, .99)
	share := (cpu1 - cpu0).Seconds() / time.Since(start).Seconds() * 100
	return []row{{"3. simulated nodes per server", fmt.Sprintf("%d nodes: %.0f %% of one core, %d MiB RSS, heartbeat handling p99 ≤ %s", n, share, maxRSS>>20, ms(time.Duration(p99*float64(time.Second)))),
		"50,000 at < 1 core, < 2 GiB RSS, p99 < 10 ms",
		fmt.Sprintf("sim agents in the server's process (counted in its CPU and RSS) heartbeat every %s over loopback HTTP for %s (%.0f polls; the %d nodes took %s to come up); p99 is a histogram bucket bound", heartbeat, cfg.HeartbeatWindow, count, n, ramp.Round(time.Second))}}, nil
}

// figureScaleFromZero: submit on an empty local-provider cluster → Running.
func figureScaleFromZero(ctx context.Context, cfg Config) ([]row, error) {
	s, err := startServer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	var lat []time.Duration
	for i := range size(cfg, 5, 1) {
		name := fmt.Sprintf("zero-%d-x", i)
		props, _ := json.Marshal(map[string]any{"vm_size": "STANDARD_D1_V2", "max_nodes": 1})
		if _, err := s.client.CreateCompute(ctx, api.ComputeCreate{Name: name, Type: "cluster", Properties: props}); err != nil {
			return nil, err
		}
		s.client.WaitCompute(ctx, name, false, nil)
		r, err := s.client.SubmitRun(ctx, api.RunSubmit{Compute: name, Command: []string{"true"}}, "")
		if err != nil {
			return nil, err
		}
		done, err := s.client.WaitRun(ctx, r.ID, nil)
		if err != nil || done.Status != api.RunCompleted {
			return nil, fmt.Errorf("scale-from-zero run: %v %v", done, err)
		}
		lat = append(lat, done.StartedAt.Sub(done.CreatedAt))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return []row{{"4. scale from zero, local provider", "p50 " + ms(percentile(lat, .5)) + ", max " + ms(lat[len(lat)-1]), "< 2 s",
		fmt.Sprintf("%d new clusters; submit on an empty cluster → the run Running: a real agent process is started, says hello, runs `true`", len(lat))}}, nil
}

// figureAPI: reads and submissions per second from a Go load generator.
func figureAPI(ctx context.Context, cfg Config) ([]row, error) {
	s, err := startServer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	if err := createSimCluster(ctx, s, "sim-api", "STANDARD_D5_V2", size(cfg, 50, 5)); err != nil {
		return nil, err
	}
	r, err := s.client.SubmitRun(ctx, api.RunSubmit{Compute: "sim-api", Command: []string{"true"}}, "")
	if err != nil {
		return nil, err
	}
	window := time.Duration(size(cfg, 10, 1)) * time.Second
	rate := func(op func() error) (float64, error) {
		var count atomic.Int64
		deadline := time.Now().Add(window)
		err := hammer(func() bool { return time.Now().Before(deadline) }, func() error {
			err := op()
			if err == nil {
				count.Add(1)
			}
			return err
		})
		return float64(count.Load()) / window.Seconds(), err
	}
	profiled := s.profile(cfg, "5-api-reads", 2*window)
	cpu0, _ := procStats(s.cmd.Process.Pid)
	list, err := rate(func() error { _, err := s.client.ListComputes(ctx); return err })
	if err != nil {
		return nil, err
	}
	show, err := rate(func() error { _, err := s.client.GetRun(ctx, r.ID); return err })
	if err != nil {
		return nil, err
	}
	cpu1, _ := procStats(s.cmd.Process.Pid)
	profiled()
	serverCores := (cpu1 - cpu0).Seconds() / (2 * window).Seconds()
	submit, err := rate(func() error {
		_, err := s.client.SubmitRun(ctx, api.RunSubmit{Compute: "sim-api", Command: []string{"true"}}, "")
		return err
	})
	if err != nil {
		return nil, err
	}
	perRead := (cpu1 - cpu0).Seconds() / ((list + show) * window.Seconds())
	return []row{{"5. API throughput", fmt.Sprintf("compute list %.0f/s, run show %.0f/s, run submit %.0f/s", list, show, submit), "reads ≥ 20,000 /s",
		fmt.Sprintf("%d Go clients on loopback, %s each, keep-alive; the load generator shares the cores: during the reads the server used %.2f of the %d cores, %.0f µs of CPU per read", clients, window, serverCores, runtime.NumCPU(), perRead*1e6)}}, nil
}

// figureSlurm: plain Slurm beside Paddock, when a Slurm cluster is up.
func figureSlurm(ctx context.Context, cfg Config) ([]row, error) {
	conf := os.Getenv("SLURM_CONF")
	if conf == "" {
		conf = "/tmp/paddock-slurm/etc/slurm.conf"
	}
	if exec.Command("env", "SLURM_CONF="+conf, "scontrol", "ping").Run() != nil {
		return []row{{"6. versus Slurm", "skipped: no Slurm cluster (bash scripts/dev-slurm.sh start)", "≥ 5× its submit rate, ≥ 10× lower submit-to-start", ""}}, nil
	}
	n := size(cfg, 200, 5)
	dir, err := os.MkdirTemp("", "paddock-bench-slurm")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	submitted := make([]time.Time, n)
	start := time.Now()
	for i := range n {
		submitted[i] = time.Now()
		cmd := exec.CommandContext(ctx, "sbatch", "--parsable", "-o", "/dev/null", "--wrap", "date +%s.%N > "+filepath.Join(dir, strconv.Itoa(i)))
		cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("sbatch: %v %s", err, out)
		}
	}
	slurmSubmit := float64(n) / time.Since(start).Seconds()
	var slurmLat []time.Duration
	for i := range n {
		for {
			data, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i)))
			if err == nil && len(strings.TrimSpace(string(data))) > 0 {
				sec, _ := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
				slurmLat = append(slurmLat, time.Unix(0, int64(sec*1e9)).Sub(submitted[i]))
				break
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	sort.Slice(slurmLat, func(i, j int) bool { return slurmLat[i] < slurmLat[j] })

	s, err := startServer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	ids := make([]string, n)
	start = time.Now()
	for i := range n {
		r, err := s.client.SubmitRun(ctx, api.RunSubmit{Compute: "local", Command: []string{"true"}}, "")
		if err != nil {
			return nil, err
		}
		ids[i] = r.ID
	}
	paddockSubmit := float64(n) / time.Since(start).Seconds()
	var lat []time.Duration
	for _, id := range ids {
		r, err := s.client.WaitRun(ctx, id, nil)
		if err != nil || r.Status != api.RunCompleted {
			return nil, fmt.Errorf("run %s: %v", id, err)
		}
		lat = append(lat, r.StartedAt.Sub(r.CreatedAt))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	cond := fmt.Sprintf("%d trivial jobs, one client submitting one after another; Slurm: `sbatch --wrap`, one node of %d CPUs; Paddock: the local target", n, runtime.NumCPU())
	return []row{
		{"6. plain Slurm", fmt.Sprintf("%.0f submits/s; submit → start p50 %s, p99 %s", slurmSubmit, ms(percentile(slurmLat, .5)), ms(percentile(slurmLat, .99))), "—", cond},
		{"6. Paddock beside it", fmt.Sprintf("%.0f submits/s (%.1f×); submit → Running p50 %s (%.0f× lower), p99 %s", paddockSubmit, paddockSubmit/slurmSubmit,
			ms(percentile(lat, .5)), float64(percentile(slurmLat, .5))/float64(max(percentile(lat, .5), time.Microsecond)), ms(percentile(lat, .99))),
			"≥ 5× its submit rate, ≥ 10× lower submit-to-start", cond},
	}, nil
}
