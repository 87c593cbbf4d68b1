package server

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// runToAPI is a run as users see it, with its latest metrics.
func (a *API) runToAPI(ctx context.Context, r store.Run, withMetrics bool) (api.Run, error) {
	out := r.Run
	if out.Attempts == nil {
		out.Attempts = []api.Attempt{}
	}
	if !withMetrics {
		return out, nil
	}
	ms, err := a.store.Metrics(ctx, r.ID)
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

func (a *API) putSnapshot(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := a.checkWS(r); err != nil {
		return err
	}
	if err := a.art.CheckSnapshotSize(r.ContentLength); err != nil {
		return err // before reading it
	}
	ref, err := a.art.PutSnapshot(r.Body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ref)
	return nil
}

func (a *API) headSnapshot(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := a.checkWS(r); err != nil {
		return err
	}
	if !a.art.HasSnapshot(r.PathValue("digest")) {
		w.WriteHeader(http.StatusNotFound)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (a *API) checkWS(r *http.Request) error {
	ok, err := a.store.WorkspaceExists(r.Context(), r.PathValue("ws"))
	if err != nil {
		return err
	}
	if !ok {
		return api.NotFound("workspace %q not found", r.PathValue("ws"))
	}
	return nil
}

func (a *API) submitRun(w http.ResponseWriter, r *http.Request, who caller) error {
	var in api.RunSubmit
	if err := decode(r, &in); err != nil {
		return err
	}
	if len(r.Header.Get("Idempotency-Key")) > 256 {
		return api.Invalid("Idempotency-Key", "the Idempotency-Key header must be at most 256 characters")
	}
	ephemeral := ""
	if in.ComputeSpec != nil {
		if in.Compute != "" {
			return api.Invalid("compute_spec", "give compute or compute_spec, not both")
		}
		// Check the run before making a cluster for it.
		probe := in
		probe.Compute = "local"
		if _, err := a.ws.ValidateRun(r.Context(), r.PathValue("ws"), who.name(), probe, a.art.HasSnapshot); err != nil {
			var e *api.Error
			if !errors.As(err, &e) || e.Field != "resources" && e.Field != "node_count" {
				return err
			}
		}
		name, err := ephemeralCluster(r.Context(), a.ws, a.store, r.PathValue("ws"), who.name(), *in.ComputeSpec)
		if err != nil {
			return err
		}
		in.Compute, in.ComputeSpec, ephemeral = name, nil, name
	}
	run, err := a.ws.ValidateRun(r.Context(), r.PathValue("ws"), who.name(), in, a.art.HasSnapshot)
	if err != nil {
		if ephemeral != "" { // leave nothing half-made
			a.ws.DeleteCompute(context.WithoutCancel(r.Context()), r.PathValue("ws"), ephemeral, true)
		}
		return err
	}
	run.IdempotencyKey = r.Header.Get("Idempotency-Key")
	saved, err := a.dispatch.Submit(r.Context(), run)
	if ephemeral != "" && (err != nil || saved.Compute != ephemeral) {
		// Refused, or a retry that returned the first run (on its own
		// cluster): the cluster made for this request has no run.
		a.ws.DeleteCompute(context.WithoutCancel(r.Context()), r.PathValue("ws"), ephemeral, true)
	}
	if err != nil {
		return err
	}
	out, err := a.runToAPI(r.Context(), saved, false)
	if err != nil {
		return err
	}
	w.Header().Set("Location", r.URL.Path+"/"+out.ID)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) listRuns(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := a.checkWS(r); err != nil {
		return err
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	limit = min(limit, 1000)
	runs, err := a.store.ListRuns(r.Context(), r.PathValue("ws"), store.RunFilter{
		Compute: strings.ToLower(r.URL.Query().Get("compute")), Limit: limit})
	if err != nil {
		return err
	}
	out := api.RunList{Items: make([]api.Run, 0, len(runs))}
	for _, run := range runs {
		ar, _ := a.runToAPI(r.Context(), run, false)
		out.Items = append(out.Items, ar)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getRun returns a run. With ?watch=STATUS it first waits (up to
// ?timeout_ms, at most 60 s) while the run's status is still STATUS, and
// with ?watch_reason=R also while its status_reason is still R, so clients
// follow a run (and why it waits) without polling.
func (a *API) getRun(w http.ResponseWriter, r *http.Request, _ caller) error {
	ws, id := r.PathValue("ws"), r.PathValue("id")
	watch := api.RunStatus(r.URL.Query().Get("watch"))
	reason, watchReason := r.URL.Query().Get("watch_reason"), r.URL.Query().Has("watch_reason")
	timeout := 30 * time.Second
	if ms, err := strconv.ParseInt(r.URL.Query().Get("timeout_ms"), 10, 64); err == nil && ms >= 0 {
		timeout = time.Duration(min(ms, 60000)) * time.Millisecond // at most 60 s, without overflow
	}
	deadline := time.After(timeout)
	for {
		changed := a.dispatch.Watch(id)
		run, err := a.store.GetRun(r.Context(), ws, id)
		if err != nil {
			return err
		}
		if watch == "" || run.Status != watch || watchReason && run.StatusReason != reason {
			out, err := a.runToAPI(r.Context(), run, true)
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, out)
			return nil
		}
		select {
		case <-changed:
		case <-deadline:
			watch = ""
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
}

// runAction serves POST .../runs/{id}:cancel.
func (a *API) runAction(w http.ResponseWriter, r *http.Request, who caller) error {
	id, action, ok := strings.Cut(r.PathValue("id"), ":")
	if !ok || action != "cancel" {
		return api.NotFound("no API route POST %s; runs support :cancel", r.URL.Path)
	}
	ws := r.PathValue("ws")
	if _, err := a.store.GetRun(r.Context(), ws, id); err != nil {
		return err
	}
	run, err := a.dispatch.Cancel(r.Context(), ws, id, "canceled by "+who.name())
	if err != nil {
		return err
	}
	out, err := a.runToAPI(r.Context(), run, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, out)
	return nil
}

// runLogs streams a run's log lines as JSON lines (one api.LogLine each)
// after the cursor ?after=SEQ. With ?follow=true it keeps the response
// open and sends lines as they arrive until the run has ended and every
// line was sent.
func (a *API) runLogs(w http.ResponseWriter, r *http.Request, _ caller) error {
	ws, id := r.PathValue("ws"), r.PathValue("id")
	if _, err := a.store.GetRun(r.Context(), ws, id); err != nil {
		return err
	}
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	follow := r.URL.Query().Get("follow") == "true"
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	const page = 1000
	for {
		changed := a.dispatch.Watch(id)
		lines, err := a.store.Logs(r.Context(), id, after, page)
		if err != nil {
			return nil // the status line was sent; the client sees a short stream
		}
		for _, l := range lines {
			if err := enc.Encode(l); err != nil {
				return nil
			}
			after = l.Seq
		}
		if len(lines) == page {
			continue
		}
		if flusher != nil {
			flusher.Flush()
		}
		if !follow {
			return nil
		}
		run, err := a.store.GetRun(r.Context(), ws, id)
		if err != nil {
			return nil
		}
		if run.Status.Terminal() {
			// Lines that arrived between the read and the status check.
			more, _ := a.store.Logs(r.Context(), id, after, page)
			if len(more) == 0 {
				return nil
			}
			continue
		}
		select {
		case <-changed:
		case <-time.After(15 * time.Second):
		case <-r.Context().Done():
			return nil
		}
	}
}

func (a *API) getMetrics(w http.ResponseWriter, r *http.Request, _ caller) error {
	ws, id := r.PathValue("ws"), r.PathValue("id")
	if _, err := a.store.GetRun(r.Context(), ws, id); err != nil {
		return err
	}
	ms, err := a.store.Metrics(r.Context(), id)
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []api.Metric{}
	}
	writeJSON(w, http.StatusOK, api.MetricList{Items: ms})
	return nil
}

// maxMetricStep bounds a metric's step: 2^53, so that clients which read
// JSON numbers as floats (JavaScript, most tools) see the step exactly.
const maxMetricStep = 1 << 53

// postMetrics stores metrics a run logs (with its run token) or a user
// posts for a run.
func (a *API) postMetrics(w http.ResponseWriter, r *http.Request, who caller) error {
	ws, id := r.PathValue("ws"), r.PathValue("id")
	run, err := a.store.GetRun(r.Context(), ws, id) // before reading the body
	if err != nil {
		return err
	}
	var in api.MetricPost
	if err := decode(r, &in); err != nil {
		return err
	}
	items := in.Metrics
	if in.Name != "" || in.Value != nil {
		if in.Value == nil {
			return api.Invalid("value", "value is required")
		}
		items = append(items, api.MetricItem{Name: in.Name, Value: *in.Value, Step: in.Step})
	}
	if len(items) == 0 {
		return api.Invalid("metrics", "give a metric as {name, value, step} or a list in metrics")
	}
	if len(items) > 10000 {
		return api.Invalid("metrics", "at most 10000 metrics per request")
	}
	now := time.Now().UTC()
	ms := make([]api.Metric, 0, len(items))
	for i, it := range items {
		if it.Name == "" || len(it.Name) > 255 || strings.ContainsRune(it.Name, 0) {
			return api.Invalid("name", "metric %d: name must be 1 to 255 characters, without NUL bytes", i)
		}
		if math.IsNaN(it.Value) || math.IsInf(it.Value, 0) {
			return api.Invalid("value", "metric %q: value must be a finite number", it.Name)
		}
		m := api.Metric{Name: it.Name, Value: it.Value, Time: now}
		if it.Step != nil {
			if *it.Step < -maxMetricStep || *it.Step > maxMetricStep {
				return api.Invalid("step", "metric %q: step must be between -2^53 and 2^53, whole numbers a float holds exactly", it.Name)
			}
			m.Step = *it.Step
		}
		ms = append(ms, m)
	}
	if err := a.store.AddMetrics(r.Context(), run.ID, ms); err != nil {
		return err
	}
	a.dispatch.NotifyLogs(run.ID)
	writeJSON(w, http.StatusCreated, api.MetricList{Items: ms})
	return nil
}

func (a *API) getOutputs(w http.ResponseWriter, r *http.Request, _ caller) error {
	ws, id := r.PathValue("ws"), r.PathValue("id")
	run, err := a.store.GetRun(r.Context(), ws, id)
	if err != nil {
		return err
	}
	if !run.Status.Terminal() && len(run.Outputs) == 0 {
		return api.Conflict("run %s is %s; its outputs are uploaded when it ends", id, run.Status)
	}
	w.Header().Set("Content-Type", "application/gzip")
	if err := a.art.WriteOutputs(id, w); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		a.log.Error("writing outputs", "run", id, "err", err)
	}
	return nil
}
