// Package databricks is the node provider of databricks targets. A
// target's one node is an agent inside the server's process that speaks
// the real agent protocol over loopback HTTP(S), as the sim provider's
// agents do, so runs, attempts, logs, cancel, waits, the studio and the SDK
// work as on any node. It executes an assignment as a Databricks Jobs run:
//
//  1. it uploads the run's source snapshot to DBFS under
//     dbfs:/paddock/WS/runs/RUN/ATTEMPT/src (with the stored outputs in
//     src/outputs when the attempt restores them) and a small entry script
//     beside it;
//  2. it submits a one-time run (runs/submit, with an idempotency token made
//     from the attempt) of a spark_python_task: the entry script, which
//     changes to src through the cluster's /dbfs mount and runs the run's
//     Python file with the run's arguments, so ./outputs is src/outputs;
//  3. it polls runs/get (1 s, backing off to 5 s), reports Running when
//     the Databricks run is RUNNING, and once it is TERMINATED ships the
//     task's output (runs/get-output: logs, error, error_trace) as the run's
//     log, brings src/outputs back as the run's outputs and reports how it
//     ended (SUCCESS → Completed; FAILED → Failed with the state message;
//     TIMEDOUT → Canceled with reason MaxRunDurationExceeded, as a run
//     Paddock stops at its max_run_duration; CANCELED → Canceled);
//  4. a cancel of the attempt is runs/cancel, then the same polling until
//     the Databricks run is TERMINATED.
//
// Each node's token and the Databricks run of each attempt in flight are
// kept in DATA_DIR/databricks/NODE.json, so a restarted server starts the
// node's agent again, which announces those attempts and resumes polling
// their runs: nothing is lost and nothing is submitted twice.
package databricks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/backoff"
	"github.com/paddock-ml/paddock/internal/certs"
	"github.com/paddock-ml/paddock/internal/provider"
)

// Provider runs the in-server agents of databricks targets.
type Provider struct {
	ctx  context.Context
	env  provider.Env
	dir  string
	log  *slog.Logger
	http *http.Client

	mu    sync.Mutex
	nodes map[string]*agent
}

var _ provider.Provider = (*Provider)(nil)

func init() {
	provider.Register("databricks", func(ctx context.Context, env provider.Env) (provider.Provider, error) {
		var roots *x509.CertPool
		if len(env.CA) > 0 {
			pool, err := certs.Pool(env.CA)
			if err != nil {
				return nil, fmt.Errorf("databricks provider: the server's CA: %w", err)
			}
			roots = pool
		}
		return New(ctx, env, roots)
	})
}

// New returns the provider and starts the agents of the nodes a previous
// server left in env.DataDir; they stop when ctx ends.
func New(ctx context.Context, env provider.Env, roots *x509.CertPool) (*Provider, error) {
	p := &Provider{ctx: ctx, env: env, dir: filepath.Join(env.DataDir, "databricks"), log: env.Log.With("provider", "databricks"),
		http: &http.Client{Transport: api.NewTransport(roots), Timeout: pollWait + 30*time.Second}, nodes: map[string]*agent{}}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(p.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		var st nodeState
		data, err := os.ReadFile(f)
		if err == nil {
			err = json.Unmarshal(data, &st)
		}
		if err != nil || st.ID == "" || st.ID+".json" != filepath.Base(f) {
			p.log.Warn("ignoring a node file that cannot be read", "file", f, "err", err)
			continue
		}
		p.start(st)
	}
	return p, nil
}

// nodeState is what is kept of a node across restarts.
type nodeState struct {
	ID        string  `json:"id"`
	Workspace string  `json:"workspace"`
	Target    string  `json:"target"`
	Token     string  `json:"token"`
	Cores     float64 `json:"cores"`
	MemoryGB  float64 `json:"memory_gb"`
	// Attempts in flight, by run id.
	Attempts map[string]attemptState `json:"attempts,omitempty"`
}

// attemptState is an attempt in flight: its Databricks run once submitted.
type attemptState struct {
	Attempt int   `json:"attempt"`
	RunID   int64 `json:"databricks_run_id,omitempty"`
	// Canceled says a cancel was sent to Databricks.
	Canceled bool `json:"canceled,omitempty"`
}

// Name implements provider.Provider.
func (p *Provider) Name() string { return "databricks" }

// Create implements provider.Provider: it records the node and starts its
// agent.
func (p *Provider) Create(_ context.Context, spec provider.NodeSpec) error {
	p.mu.Lock()
	_, ok := p.nodes[spec.ID]
	p.mu.Unlock()
	if ok {
		return nil
	}
	target := spec.Host
	if target == "" {
		target = spec.Compute
	}
	st := nodeState{ID: spec.ID, Workspace: spec.Workspace, Target: target, Token: spec.Token, Cores: spec.Cores, MemoryGB: spec.MemoryGB}
	if err := p.save(st); err != nil {
		return err
	}
	p.start(st)
	return nil
}

func (p *Provider) start(st nodeState) {
	ctx, cancel := context.WithCancel(p.ctx)
	server, _, _ := strings.Cut(p.env.ServerURL, ",")
	c := api.NewAgentClient(server, st.Token)
	c.HTTP = p.http
	a := &agent{p: p, st: st, client: c, cancel: cancel, attempts: map[string]*attempt{}, log: p.log.With("node", st.ID)}
	if a.st.Attempts == nil {
		a.st.Attempts = map[string]attemptState{}
	}
	p.mu.Lock()
	p.nodes[st.ID] = a
	p.mu.Unlock()
	a.wg.Add(1)
	go a.run(ctx)
}

// Delete implements provider.Provider: it stops the attempts still in
// flight (a target deleted with --force), cancelling their Databricks
// runs, then stops the node's agent and forgets it.
func (p *Provider) Delete(_ context.Context, id string) error {
	p.mu.Lock()
	a, ok := p.nodes[id]
	delete(p.nodes, id)
	p.mu.Unlock()
	if ok {
		a.stopAll("the node is being removed", 30*time.Second)
		a.cancel()
		a.wg.Wait()
	}
	err := os.Remove(p.file(id))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return err
}

// List implements provider.Provider.
func (p *Provider) List(context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Keys(p.nodes)), nil
}

func (p *Provider) file(id string) string { return filepath.Join(p.dir, id+".json") }

// save writes a node's state (its token included: the file is the
// server's own, mode 0600 in the data dir) atomically.
func (p *Provider) save(st nodeState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(p.dir, ".node-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p.file(st.ID))
}

// idempotencyToken names an attempt to Databricks, so that a submit
// retried after a crash returns the run the first one made.
func idempotencyToken(ws, runID string, attempt int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d", ws, runID, attempt))
	return "paddock-" + hex.EncodeToString(sum[:24])
}

// entryScript is the spark_python_task's file: it runs the run's Python
// file (argv[2]) from the run's source directory (argv[1], through the
// cluster's /dbfs mount) with the run's arguments, so that ./outputs and
// the source's own modules work as on any other target.
var entryScript = []byte(`# Written by Paddock: runs a Paddock run's script from its source directory.
import os, runpy, sys
src, script = sys.argv[1], sys.argv[2]
os.chdir(src)
sys.path.insert(0, src)
os.makedirs("outputs", exist_ok=True)
sys.argv = [script] + sys.argv[3:]
runpy.run_path(script, run_name="__main__")
`)

// runDir is where an attempt's files go on DBFS.
func runDir(ws, runID string, attempt int) string {
	return fmt.Sprintf("dbfs:/paddock/%s/runs/%s/%d", ws, runID, attempt)
}

// fuse is a dbfs:/ path as a cluster's /dbfs mount shows it.
func fuse(dbfs string) string { return "/dbfs/" + strings.TrimPrefix(dbfs, "dbfs:/") }

// logLines numbers text's lines from n on, splitting lines longer than
// the protocol takes.
func logLines(n int64, stream, text string) []api.AgentLogLine {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return nil
	}
	var out []api.AgentLogLine
	now := time.Now().UnixNano()
	for _, l := range strings.Split(text, "\n") {
		for {
			part := l
			if len(part) > api.MaxLogLineBytes {
				part = l[:api.MaxLogLineBytes]
			}
			out = append(out, api.AgentLogLine{N: n, Stream: stream, TimeNS: now, Text: part})
			n++
			if l = l[len(part):]; l == "" {
				break
			}
		}
	}
	return out
}

// sleep waits d or until ctx ends or stop closes; it reports whether ctx
// is still live.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-stop:
	case <-t.C:
	}
	return true
}

// retry calls f until it succeeds, says the attempt is gone (ErrConflict,
// ErrNotFound) or the request can never succeed (returned), or ctx ends.
func retry(ctx context.Context, f func() error) error {
	return backoff.New(200*time.Millisecond, 5*time.Second).Retry(ctx, f, func(err error) bool {
		return errors.Is(err, api.ErrConflict) || errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrInvalid) ||
			errors.Is(err, api.ErrTooLarge) || errors.Is(err, api.ErrInsufficientStorage)
	})
}

// bytesReader is a fresh reader over data for each retry.
func bytesReader(data []byte) *bytes.Reader { return bytes.NewReader(data) }
