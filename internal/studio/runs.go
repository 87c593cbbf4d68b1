package studio

import (
	"html/template"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/runs"
	"github.com/paddock-ml/paddock/internal/store"
)

// runStatuses are the statuses the runs list filters by.
var runStatuses = []api.RunStatus{api.RunQueued, api.RunProvisioning, api.RunStarting, api.RunPreparing, api.RunRunning,
	api.RunFinalizing, api.RunCompleted, api.RunFailed, api.RunCanceled}

// runsData is the runs list.
type runsData struct {
	Page     runs.Page
	Filter   store.RunFilter
	Statuses []api.RunStatus
	// Filtered says a filter is set; Older and Newer link the pages
	// beside this one, with the same filter ("" when there is none).
	Filtered     bool
	Older, Newer template.URL
}

// runsPage lists runs, newest first, filtered and paged by keyset.
func (s *Studio) runsPage(w http.ResponseWriter, r *http.Request, q *req) error {
	qs := r.URL.Query()
	f := store.RunFilter{Compute: qs.Get("compute"), Status: api.RunStatus(qs.Get("status")), Experiment: qs.Get("experiment"),
		User: qs.Get("user"), Limit: 50}
	if f.Status != "" && !slices.Contains(runStatuses, f.Status) {
		return api.Invalid("status", "status must be one of the run statuses, not %q", f.Status)
	}
	f.BeforeSeq, _ = strconv.ParseInt(qs.Get("before"), 10, 64)
	f.AfterSeq, _ = strconv.ParseInt(qs.Get("after"), 10, 64)
	p, err := s.Runs.ListPage(r.Context(), q.WS, f)
	if err != nil {
		return err
	}
	keep := url.Values{}
	for k, v := range map[string]string{"compute": f.Compute, "status": string(f.Status), "experiment": f.Experiment, "user": f.User} {
		if v != "" {
			keep.Set(k, v)
		}
	}
	d := runsData{Page: p, Filter: f, Statuses: runStatuses, Filtered: len(keep) > 0}
	// link is the runs page at a cursor, with the filter: built here
	// (and escaped here) as a whole URL.
	link := func(cursor string, seq int64) template.URL {
		if seq == 0 {
			return ""
		}
		v := url.Values{}
		maps.Copy(v, keep)
		v.Set(cursor, strconv.FormatInt(seq, 10))
		return template.URL(q.path("runs") + "?" + v.Encode())
	}
	d.Older, d.Newer = link("before", p.Older), link("after", p.Newer)
	v := s.view(q, "Runs", d)
	v.Section = "runs"
	s.renderView(w, http.StatusOK, "runs", v)
	return nil
}

// runData is a run's page.
type runData struct {
	Run api.Run
	// Lines are the log lines shown: the tail, or those above Before.
	Lines []api.LogLine
	// Older is the seq of the first line shown when there are lines
	// above it (0: the log's top is shown); Last the seq of the last.
	Older, Last int64
	// Paged is set when the page shows lines above the tail (no live
	// follow then).
	Paged     bool
	Charts    []chart
	Others    []otherMetric
	CanCancel bool
	Outputs   []api.OutputFile
	Notice    string
}

// runView reads what a run's page shows.
func (s *Studio) runView(r *http.Request, q *req, id string, before int64) (runData, error) {
	run, err := s.Runs.Get(r.Context(), q.WS, id)
	if err != nil {
		return runData{}, err
	}
	d := runData{Run: run, Outputs: run.Outputs, Paged: before > 0}
	d.CanCancel = !run.Status.Terminal() && q.P.Check("run.cancel", "", run.CreatedBy) == nil
	n := s.logTail
	if before <= 0 {
		before = math.MaxInt64
	} else {
		n = s.logPage
	}
	if d.Lines, err = s.Store.LogsBefore(r.Context(), run.ID, before, n); err != nil {
		return runData{}, err
	}
	if len(d.Lines) > 0 {
		d.Last = d.Lines[len(d.Lines)-1].Seq
		if len(d.Lines) == n {
			d.Older = d.Lines[0].Seq
		}
	}
	ms, err := s.Store.Metrics(r.Context(), run.ID)
	if err != nil {
		return runData{}, err
	}
	d.Charts, d.Others = metricCharts(ms), otherMetrics(ms)
	return d, nil
}

// run serves a run's page: status, attempts, the log's tail (or, with
// ?before=SEQ, the lines above SEQ), metrics, outputs.
func (s *Studio) run(w http.ResponseWriter, r *http.Request, q *req) error {
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	d, err := s.runView(r, q, r.PathValue("id"), before)
	if err != nil {
		return err
	}
	d.Notice = notices[r.URL.Query().Get("done")]
	v := s.view(q, d.Run.ID, d)
	v.Section = "runs"
	if !d.Paged {
		v.Live = q.path("runs", d.Run.ID, "events") + "?after=" + strconv.FormatInt(d.Last, 10)
	}
	s.renderView(w, http.StatusOK, "run", v)
	return nil
}

// runLog serves the log lines above ?before=SEQ as HTML, for the page's
// script to put on top when the reader scrolls up.
func (s *Studio) runLog(w http.ResponseWriter, r *http.Request, q *req) error {
	before, err := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	if err != nil || before <= 0 {
		return api.Invalid("before", "before must be a log line's number")
	}
	run, err := s.Store.GetRun(r.Context(), q.WS, r.PathValue("id"))
	if err != nil {
		return err
	}
	lines, err := s.Store.LogsBefore(r.Context(), run.ID, before, s.logPage)
	if err != nil {
		return err
	}
	// The run's id makes the link to the lines above these.
	d := runData{Run: api.Run{ID: run.ID}, Lines: lines}
	if len(lines) == s.logPage {
		d.Older = lines[0].Seq
	}
	html, err := s.fragment("run", "older", s.view(q, "", d))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, html)
	return nil
}

// cancelRun cancels a run.
func (s *Studio) cancelRun(w http.ResponseWriter, r *http.Request, q *req) error {
	run, err := s.Runs.Cancel(r.Context(), q.WS, r.PathValue("id"), q.P)
	if err != nil {
		return err
	}
	http.Redirect(w, r, q.path("runs", run.ID)+"?done=canceled", http.StatusSeeOther)
	return nil
}

// output downloads one of a run's output files.
func (s *Studio) output(w http.ResponseWriter, r *http.Request, q *req) error {
	run, err := s.Store.GetRun(r.Context(), q.WS, r.PathValue("id"))
	if err != nil {
		return err
	}
	p := r.PathValue("path")
	i := slices.IndexFunc(run.Outputs, func(o api.OutputFile) bool { return o.Path == p })
	if i < 0 {
		return api.NotFound("run %s has no output %q", run.ID, p)
	}
	f, err := s.Artifacts.OpenOutput(run.ID, p)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+strings.NewReplacer(`"`, "", "\\", "", "\n", "", "\r", "").Replace(lastPart(p))+`"`)
	w.Header().Set("Content-Length", strconv.FormatInt(run.Outputs[i].Size, 10))
	// Headers are sent: a copy that fails midway (the browser went
	// away) can only end the download short.
	io.Copy(w, f)
	return nil
}

// outputs downloads all of a run's outputs as one tar.gz.
func (s *Studio) outputs(w http.ResponseWriter, r *http.Request, q *req) error {
	run, err := s.Store.GetRun(r.Context(), q.WS, r.PathValue("id"))
	if err != nil {
		return err
	}
	if len(run.Outputs) == 0 {
		return api.NotFound("run %s has no outputs (yet)", run.ID)
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+run.ID+`-outputs.tar.gz"`)
	if err := s.Artifacts.WriteOutputs(run.ID, w); err != nil {
		s.Log.Error("writing outputs", "run", run.ID, "err", err)
	}
	return nil
}

func lastPart(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
