package studio

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/store"
)

// Live pages follow an event stream (Server-Sent Events) of HTML: an
// "html" event carries elements that replace those of the same id, a
// "log" event log lines to append, "end" says nothing more will change.
// The streams wait on the server's own watch machinery — the dispatcher's
// watch of a run (status, log lines, metrics), the hub for targets — and
// never poll.

// keepAlive is how often a quiet stream sends a comment, so proxies keep
// it open and a signed-out session ends it.
const keepAlive = 15 * time.Second

// maxBacklog is how far a log stream may fall behind the log's end before
// it skips ahead to the tail: a run printing faster than a browser can
// take lines does not send it the whole log.
const maxBacklog = 5000

// stream is an open event stream.
type stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startStream(w http.ResponseWriter) *stream {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &stream{w: w, rc: http.NewResponseController(w)}
	fmt.Fprint(w, "retry: 2000\n\n")
	s.rc.Flush()
	return s
}

// send writes one event (id may be empty) and flushes it.
func (s *stream) send(event, id, data string) error {
	var b strings.Builder
	b.WriteString("event: " + event + "\n")
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	for _, line := range strings.Split(data, "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	if _, err := fmt.Fprint(s.w, b.String()); err != nil {
		return err
	}
	return s.rc.Flush()
}

// ping keeps a quiet stream open.
func (s *stream) ping() error {
	if _, err := fmt.Fprint(s.w, ": ping\n\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}

// stillSignedIn ends a stream whose session was revoked or expired.
func (s *Studio) stillSignedIn(r *http.Request, q *req) bool {
	_, err := s.Users.Authenticate(r.Context(), q.session)
	return err == nil
}

// computesEvents streams the compute list's rows as their node counts
// and states change: the changed rows, or the whole table when targets
// came or went.
func (s *Studio) computesEvents(w http.ResponseWriter, r *http.Request, q *req) error {
	ctx := r.Context()
	var names string
	sent := map[string]string{}
	var st *stream
	for {
		changed := s.hub.wait(q.WS + "/")
		rows, err := s.rows(ctx, q)
		if err != nil {
			return err
		}
		var ns []string
		for _, rw := range rows {
			ns = append(ns, rw.Name)
		}
		if st == nil {
			st = startStream(w)
		}
		var out strings.Builder
		if joined := strings.Join(ns, "\x00"); joined != names {
			names = joined
			// The whole table, the first time too: targets may have come
			// or gone since the page was rendered.
			html, err := s.fragment("computes", "rows", s.view(q, "", computesData{Body: rowsHTML(rows, q.WS)}))
			if err != nil {
				return err
			}
			out.WriteString(html)
			for _, rw := range rows {
				sent[rw.Name] = rw.html(q.WS)
			}
		} else {
			for _, rw := range rows {
				if h := rw.html(q.WS); h != sent[rw.Name] {
					sent[rw.Name] = h
					out.WriteString(h)
				}
			}
		}
		if out.Len() > 0 {
			if err := st.send("html", "", out.String()); err != nil {
				return nil
			}
		}
		if err := s.waitOrPing(ctx, r, q, st, changed); err != nil {
			return nil
		}
	}
}

// waitOrPing waits for changed, sending keep-alives meanwhile; it fails
// when the client went away or signed out.
func (s *Studio) waitOrPing(ctx context.Context, r *http.Request, q *req, st *stream, changed <-chan struct{}) error {
	for {
		t := s.Clock.NewTimer(keepAlive)
		select {
		case <-changed:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
			if !s.stillSignedIn(r, q) {
				st.send("end", "", "signed out")
				return api.Unauthenticated("signed out")
			}
			if err := st.ping(); err != nil {
				return err
			}
		}
	}
}

// computeEvents streams a target's page as it changes: its state,
// problems, nodes, timeline and queue.
func (s *Studio) computeEvents(w http.ResponseWriter, r *http.Request, q *req) error {
	ctx := r.Context()
	name := r.PathValue("name")
	var st *stream
	last := ""
	for {
		changed := s.hub.wait(store.Key(q.WS, name))
		d, err := s.computeView(r, q, name)
		if st == nil {
			if err != nil {
				return err
			}
			st = startStream(w)
		}
		if err != nil {
			st.send("end", "", api.AsError(err).Message)
			return nil
		}
		html, err := s.fragment("compute", "live", s.view(q, "", d))
		if err != nil {
			return err
		}
		if html != last {
			last = html
			if err := st.send("html", "", html); err != nil {
				return nil
			}
		}
		if err := s.waitOrPing(ctx, r, q, st, changed); err != nil {
			return nil
		}
	}
}

// metricsEvery bounds how often a run's stream re-reads its metrics.
const metricsEvery = time.Second

// runEvents streams a run's page: its status, attempts and outputs as
// they change, its log lines as they arrive (after ?after=SEQ, or the
// Last-Event-ID a reconnecting browser sends), and its metric charts.
// It ends once the run has ended and every line was sent.
func (s *Studio) runEvents(w http.ResponseWriter, r *http.Request, q *req) error {
	ctx := r.Context()
	id := r.PathValue("id")
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if le := r.Header.Get("Last-Event-ID"); le != "" {
		after, _ = strconv.ParseInt(le, 10, 64)
	}
	if _, err := s.Store.GetRun(ctx, q.WS, id); err != nil {
		return err
	}
	st := startStream(w)
	var lastHead string
	lastMetrics, metricsAt := -1, time.Time{}
	metricsDue := true
	// sendMetrics sends the charts when values were added since.
	sendMetrics := func() error {
		ms, err := s.Store.Metrics(ctx, id)
		if err != nil || len(ms) == lastMetrics {
			return nil
		}
		lastMetrics = len(ms)
		html, err := s.fragment("run", "charts", s.view(q, "", runData{Charts: metricCharts(ms), Others: otherMetrics(ms)}))
		if err != nil {
			return err
		}
		return st.send("html", "", html)
	}
	for {
		changed := s.Dispatch.Watch(id)
		stored, err := s.Store.GetRun(ctx, q.WS, id)
		if err != nil {
			return nil
		}
		run := stored.Run
		d := runData{Run: run, Outputs: run.Outputs}
		d.CanCancel = !run.Status.Terminal() && q.P.Check("run.cancel", "", run.CreatedBy) == nil
		head, err := s.fragment("run", "live", s.view(q, "", d))
		if err != nil {
			return err
		}
		if head != lastHead {
			lastHead = head
			if st.send("html", "", head) != nil {
				return nil
			}
		}
		// Log lines, a page at a time; far behind, skip to the tail.
		for {
			lines, err := s.Store.Logs(ctx, id, after, s.logPage)
			if err != nil {
				return nil
			}
			if len(lines) == s.logPage {
				tail, err := s.Store.LogsBefore(ctx, id, math.MaxInt64, 1)
				if err == nil && len(tail) == 1 && tail[0].Seq-after > maxBacklog {
					skipTo := tail[0].Seq - int64(s.logPage)
					if st.send("skip", "", fmt.Sprintf("%d lines skipped here: the log grows faster than it can be shown; reload for its end, or `paddock run logs %s`", skipTo-after, id)) != nil {
						return nil
					}
					after = skipTo
					continue
				}
			}
			if len(lines) == 0 {
				break
			}
			html, err := s.fragment("run", "lines", s.view(q, "", runData{Lines: lines}))
			if err != nil {
				return err
			}
			after = lines[len(lines)-1].Seq
			if st.send("log", strconv.FormatInt(after, 10), html) != nil {
				return nil
			}
			if len(lines) < s.logPage {
				break
			}
		}
		if metricsDue && s.Clock.Since(metricsAt) >= metricsEvery || run.Status.Terminal() {
			metricsDue, metricsAt = false, s.Clock.Now()
			if sendMetrics() != nil {
				return nil
			}
		}
		if run.Status.Terminal() {
			if more, _ := s.Store.Logs(ctx, id, after, 1); len(more) == 0 {
				st.send("end", "", string(run.Status))
				return nil
			}
			continue // lines that came in since
		}
		var due <-chan time.Time
		var dueTimer clock.Timer
		if metricsDue {
			dueTimer = s.Clock.NewTimer(max(metricsEvery-s.Clock.Since(metricsAt), 0))
			due = dueTimer.C()
		}
		ping := s.Clock.NewTimer(keepAlive)
		gone := false
		select {
		case <-changed:
			metricsDue = true
		case <-due:
		case <-ctx.Done():
			gone = true
		case <-ping.C():
			gone = !s.stillSignedIn(r, q) || st.ping() != nil
			if gone {
				st.send("end", "", "signed out")
			}
		}
		ping.Stop()
		if dueTimer != nil {
			dueTimer.Stop()
		}
		if gone {
			return nil
		}
	}
}
