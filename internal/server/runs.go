package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/store"
)

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
	out, err := a.runs.Submit(r.Context(), r.PathValue("ws"), who.name(), in, r.Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	w.Header().Set("Location", r.URL.Path+"/"+out.ID)
	noteTarget(r, "runs/"+out.ID)
	writeJSON(w, http.StatusCreated, out)
	return nil
}
func (a *API) listRuns(w http.ResponseWriter, r *http.Request, _ caller) error {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	runs, err := a.runs.List(r.Context(), r.PathValue("ws"), store.RunFilter{Compute: r.URL.Query().Get("compute"), Limit: limit})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.RunList{Items: runs})
	return nil
}

// getRun returns a run. With ?watch=STATUS it first waits (up to
// ?timeout_ms, at most 60 s) while the run's status is still STATUS (and,
// with ?watch_reason=R, its reason still R), so clients follow a run
// without polling.
func (a *API) getRun(w http.ResponseWriter, r *http.Request, _ caller) error {
	q := r.URL.Query()
	timeout := 30 * time.Second
	if ms, err := strconv.ParseInt(q.Get("timeout_ms"), 10, 64); err == nil && ms >= 0 {
		timeout = time.Duration(min(ms, 60000)) * time.Millisecond // at most 60 s, without overflow
	}
	out, err := a.runs.Wait(r.Context(), r.PathValue("ws"), r.PathValue("id"), api.RunStatus(q.Get("watch")),
		q.Get("watch_reason"), q.Has("watch_reason"), timeout)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// runLogs streams a run's log lines as JSON lines (one api.LogLine each)
// after the cursor ?after=SEQ. With ?follow=true it keeps the response
// open and sends lines as they arrive until the run has ended and every
// line was sent.
func (a *API) runLogs(w http.ResponseWriter, r *http.Request, _ caller) error {
	ws, id := r.PathValue("ws"), r.PathValue("id")
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	follow := r.URL.Query().Get("follow") == "true"
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	started := false
	start := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
	}
	err := a.runs.Logs(r.Context(), ws, id, after, follow, func(l api.LogLine) error {
		start()
		return enc.Encode(l)
	}, func() {
		start()
		if flusher != nil {
			flusher.Flush()
		}
	})
	if started {
		return nil // the status line was sent; the client sees a short stream
	}
	return err
}
func (a *API) getMetrics(w http.ResponseWriter, r *http.Request, _ caller) error {
	ms, err := a.runs.Metrics(r.Context(), r.PathValue("ws"), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.MetricList{Items: ms})
	return nil
}

// postMetrics stores metrics a run logs (with its run token) or a user
// posts for a run.
func (a *API) postMetrics(w http.ResponseWriter, r *http.Request, who caller) error {
	run, err := a.store.GetRun(r.Context(), r.PathValue("ws"), r.PathValue("id")) // before reading the body
	if err != nil {
		return err
	}
	if who.User != nil {
		if err := who.P.Check(authz.WriteMetrics, "run "+run.ID, run.CreatedBy); err != nil {
			return err
		}
	}
	var in api.MetricPost
	if err := decode(r, &in); err != nil {
		return err
	}
	ms, err := a.runs.PostMetrics(r.Context(), run, in)
	if err != nil {
		return err
	}
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
