// Package runs is the run service: submitting a run (with a cluster made
// for it when it gives a compute spec, deleted when it ends), cancelling
// it, reading it, and storing what its agent and the run itself send (log
// lines under a per-run cap, metrics). The HTTP handlers only decode,
// call this and encode.
package runs

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/dispatch"
	"github.com/paddock-ml/paddock/internal/notify"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/targets"
)

// Service performs run operations.
type Service struct {
	Store    store.Store
	Dispatch *dispatch.Dispatcher
	// Computes validates runs against their targets and makes and deletes
	// run-based clusters.
	Computes *targets.Service
	// HasSource reports whether a source snapshot is stored.
	HasSource func(digest string) bool
	// HasFile reports whether a run has a file (an image metric names
	// one); nil skips the check.
	HasFile func(runID, path string) bool
	Log     *slog.Logger
	Clock   clock.Clock
	// MaxLogBytes caps what a run's log may store (0: no cap).
	MaxLogBytes int64

	initOnce sync.Once
	logs     *logLimit
	mu       sync.Mutex
	waiting  map[string][]chan struct{} // targets a submit waits for, by key
}

func (s *Service) init() {
	s.initOnce.Do(func() {
		s.Clock = clock.Or(s.Clock)
		s.logs = newLogLimit(s.MaxLogBytes, s.Store)
		s.waiting = map[string][]chan struct{}{}
	})
}

// Watch subscribes the service to what it acts on: a run ending (its
// run-based cluster goes) and targets changing provisioning state (a
// submit waiting for its cluster to be ready).
func (s *Service) Watch(n *notify.Notifier) {
	s.init()
	n.Subscribe(notify.RunEnded, func(key string) {
		ws, name := store.SplitKey(key)
		go s.deleteIfRunCluster(ws, name)
	})
	n.Subscribe(notify.Provisioned, s.wake)
}

// wake tells submits waiting for a target that it changed.
func (s *Service) wake(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.waiting[key] {
		close(ch)
	}
	delete(s.waiting, key)
}

// changes returns a channel closed at the next provisioning change of a
// target.
func (s *Service) changes(ws, name string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	key := store.Key(ws, name)
	s.waiting[key] = append(s.waiting[key], ch)
	return ch
}

// Submit validates a run and queues it; with a compute spec it first makes
// a cluster for it. A retry with the same idempotency key returns the
// first run.
func (s *Service) Submit(ctx context.Context, ws, user string, in api.RunSubmit, idemKey string) (api.Run, error) {
	s.init()
	if len(idemKey) > 256 {
		return api.Run{}, api.Invalid("Idempotency-Key", "the Idempotency-Key header must be at most 256 characters")
	}
	if err := checkTags(in.Tags, nil); err != nil {
		return api.Run{}, err
	}
	if in.Interactive {
		return s.startInteractive(ctx, ws, user, in, idemKey)
	}
	runCluster := ""
	if in.ComputeSpec != nil {
		if in.Compute != "" {
			return api.Run{}, api.Invalid("compute_spec", "give compute or compute_spec, not both")
		}
		// Check the run before making a cluster for it.
		probe := in
		probe.Compute = "local"
		if _, err := s.Computes.ValidateRun(ctx, ws, user, probe, s.HasSource); err != nil {
			var e *api.Error
			if !errors.As(err, &e) || e.Field != "resources" && e.Field != "node_count" {
				return api.Run{}, err
			}
		}
		name, err := s.makeRunCluster(ctx, ws, user, *in.ComputeSpec)
		if err != nil {
			return api.Run{}, err
		}
		in.Compute, in.ComputeSpec, runCluster = name, nil, name
	}
	run, err := s.Computes.ValidateRun(ctx, ws, user, in, s.HasSource)
	if err != nil {
		if runCluster != "" { // leave nothing half-made
			s.Computes.DeleteCompute(context.WithoutCancel(ctx), ws, authz.System, runCluster, true)
		}
		return api.Run{}, err
	}
	run.IdempotencyKey = idemKey
	saved, err := s.Dispatch.Submit(ctx, run)
	if runCluster != "" && (err != nil || saved.Compute != runCluster) {
		// Refused, or a retry that returned the first run (on its own
		// cluster): the cluster made for this request has no run.
		s.Computes.DeleteCompute(context.WithoutCancel(ctx), ws, authz.System, runCluster, true)
	}
	if err != nil {
		return api.Run{}, err
	}
	if err := s.tag(ctx, saved.ID, in.Tags); err != nil {
		return api.Run{}, err
	}
	return s.view(ctx, saved, false)
}

// Get returns a run as users see it, with its latest metrics.
func (s *Service) Get(ctx context.Context, ws, id string) (api.Run, error) {
	r, err := s.Store.GetRun(ctx, ws, id)
	if err != nil {
		return api.Run{}, err
	}
	return s.view(ctx, r, true)
}

// List lists a workspace's runs, newest first.
func (s *Service) List(ctx context.Context, ws string, f store.RunFilter) ([]api.Run, error) {
	if err := s.Computes.CheckWorkspace(ctx, ws); err != nil {
		return nil, err
	}
	f.Limit = min(f.Limit, 1000)
	f.Compute = strings.ToLower(f.Compute)
	runs, err := s.Store.ListRuns(ctx, ws, f)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	tags, err := s.Store.RunTags(ctx, ids...)
	if err != nil {
		return nil, err
	}
	out := make([]api.Run, 0, len(runs))
	for _, r := range runs {
		v := r.Run
		if v.Attempts == nil {
			v.Attempts = []api.Attempt{}
		}
		v.Tags = tags[r.ID]
		out = append(out, v)
	}
	return out, nil
}

// Cancel stops a run, if by may cancel it.
func (s *Service) Cancel(ctx context.Context, ws, id string, by authz.Principal) (api.Run, error) {
	cur, err := s.Store.GetRun(ctx, ws, id)
	if err != nil {
		return api.Run{}, err
	}
	if err := by.Check(authz.CancelRun, "run "+id, cur.CreatedBy); err != nil {
		return api.Run{}, err
	}
	run, err := s.Dispatch.Cancel(ctx, ws, id, "canceled by "+by.User)
	if err != nil {
		return api.Run{}, err
	}
	return s.view(ctx, run, false)
}

// Metrics returns every value a run logged, by name then step.
func (s *Service) Metrics(ctx context.Context, ws, id string) ([]api.Metric, error) {
	if _, err := s.Store.GetRun(ctx, ws, id); err != nil {
		return nil, err
	}
	ms, err := s.Store.Metrics(ctx, id)
	if ms == nil {
		ms = []api.Metric{}
	}
	return ms, err
}

// view is a run as users see it, with its tags (and its latest metrics
// when asked).
func (s *Service) view(ctx context.Context, r store.Run, withMetrics bool) (api.Run, error) {
	out := r.Run
	if out.Attempts == nil {
		out.Attempts = []api.Attempt{}
	}
	tags, err := s.Store.RunTags(ctx, r.ID)
	if err != nil {
		return out, err
	}
	out.Tags = tags[r.ID]
	if !withMetrics {
		return out, nil
	}
	ms, err := s.Store.Metrics(ctx, r.ID)
	if err != nil {
		return out, err
	}
	if len(ms) > 0 {
		out.Metrics = map[string]api.Metric{}
		for _, m := range ms { // ordered by name, step: the last one wins
			out.Metrics[m.Name] = m
		}
	}
	return out, nil
}

// maxMetricStep bounds a metric's step: 2^53, so that clients which read
// JSON numbers as floats (JavaScript, Python's json with floats) get it
// exactly.
const maxMetricStep = 1 << 53

// maxMetricsPerPost bounds the metrics of one request.
const maxMetricsPerPost = 10000

// PostMetrics stores metrics a run logs (with its run token) or a user
// posts for a run; run is the run as its caller found it. A metric is a
// number unless its kind says it is a string, a table row, a JSON value or
// an image (a file of the run).
func (s *Service) PostMetrics(ctx context.Context, run store.Run, in api.MetricPost) ([]api.Metric, error) {
	items := in.Metrics
	if in.Name != "" || in.Value != nil || in.Text != nil || in.Data != nil || in.Kind != "" {
		it := api.MetricItem{Name: in.Name, Kind: in.Kind, Data: in.Data, Step: in.Step}
		switch {
		case in.Value != nil:
			it.Value = *in.Value
		case in.Kind == api.MetricNumber:
			return nil, api.Invalid("value", "value is required")
		}
		if in.Text != nil {
			it.Text = *in.Text
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, api.Invalid("metrics", "give a metric as {name, value, step} or a list in metrics")
	}
	if len(items) > maxMetricsPerPost {
		return nil, api.Invalid("metrics", "at most %d metrics per request", maxMetricsPerPost)
	}
	now := clock.Or(s.Clock).Now()
	ms := make([]api.Metric, 0, len(items))
	for i, it := range items {
		if it.Name == "" || len(it.Name) > 255 || strings.ContainsRune(it.Name, 0) {
			return nil, api.Invalid("name", "metric %d: name must be 1 to 255 characters, without NUL bytes", i)
		}
		m := api.Metric{Name: it.Name, Kind: it.Kind, Value: it.Value, Text: it.Text, Data: it.Data, Time: now}
		if err := s.checkMetric(run, &m); err != nil {
			return nil, err
		}
		if it.Step != nil {
			if *it.Step < -maxMetricStep || *it.Step > maxMetricStep {
				return nil, api.Invalid("step", "metric %q: step must be between -2^53 and 2^53, whole numbers a float holds exactly", it.Name)
			}
			m.Step = *it.Step
		}
		ms = append(ms, m)
	}
	if err := s.Store.AddMetrics(ctx, run.ID, ms); err != nil {
		return nil, err
	}
	s.Dispatch.NotifyLogs(run.ID)
	return ms, nil
}

// AppendLogs stores a batch of log lines an agent sent for one node (rank)
// of an attempt, under the run's log cap, and returns the acknowledgement:
// the last line it may forget (lines past the cap count as stored).
func (s *Service) AppendLogs(ctx context.Context, run store.Run, attempt, rank int, lines []store.LogLine) (int64, error) {
	s.init()
	var last int64
	for _, l := range lines {
		last = max(last, l.ASeq)
	}
	kept, reserved, err := s.logs.admit(ctx, run.ID, lines)
	if err != nil {
		return 0, err
	}
	ack := last
	if len(kept) > 0 {
		stored, err := s.Store.AppendLogs(ctx, run.ID, attempt, rank, kept)
		if err != nil {
			s.logs.release(run.ID, reserved)
			return 0, err
		}
		if len(kept) == len(lines) {
			ack = stored
		}
	}
	s.Dispatch.NotifyLogs(run.ID)
	return ack, nil
}

// waitReady is how long a run-based cluster may take to provision.
const waitReady = 30 * time.Second

// Page is one page of a workspace's runs, newest first, with the cursors
// of the pages beside it.
type Page struct {
	Items []api.Run
	// Older is the BeforeSeq of the next (older) page, Newer the AfterSeq
	// of the page before (newer); 0 when there is none.
	Older, Newer int64
}

// ListPage pages a workspace's runs that match f (at most 200 a page),
// newest first, by keyset: each page costs the same however many runs
// there are.
func (s *Service) ListPage(ctx context.Context, ws string, f store.RunFilter) (Page, error) {
	if err := s.Computes.CheckWorkspace(ctx, ws); err != nil {
		return Page{}, err
	}
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = min(max(f.Limit, 50), 200)
	}
	limit := f.Limit
	f.Limit++ // one more tells whether there is another page
	f.Compute = strings.ToLower(f.Compute)
	rs, err := s.Store.ListRuns(ctx, ws, f)
	if err != nil {
		return Page{}, err
	}
	var p Page
	more := len(rs) > limit
	switch {
	case f.AfterSeq > 0:
		if more {
			rs = rs[1:] // the newest is the next newer page's
		}
		if len(rs) > 0 {
			p.Older = rs[len(rs)-1].Seq
		}
		if more && len(rs) > 0 {
			p.Newer = rs[0].Seq
		}
	default:
		if more {
			rs = rs[:limit]
			p.Older = rs[len(rs)-1].Seq
		}
		if f.BeforeSeq > 0 && len(rs) > 0 {
			p.Newer = rs[0].Seq
		}
	}
	p.Items = make([]api.Run, 0, len(rs))
	for _, r := range rs {
		v, _ := s.view(ctx, r, false)
		p.Items = append(p.Items, v)
	}
	return p, nil
}
