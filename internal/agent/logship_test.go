package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// logServer is a fake server for an attempt's log endpoint: it stores lines
// by number (ignoring ones it has, as the real store does) and acks the
// highest it has.
type logServer struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	lines    map[int64]api.AgentLogLine
	order    []int64 // numbers in the order they were first stored
	posted   int     // lines posted, refused requests and resends included
	received int     // lines accepted, resends included
	requests int
	failures int // requests answered 503 before any is accepted
	refuse   int // requests answered 413 before any is accepted
	status   int // when not 0, every request gets this status
	down     bool
	acceptAt most
	badAuth  bool
}

// most limits how many lines of a batch the server stores (0: all).
type most int

func newLogServer(t *testing.T) *logServer {
	ls := &logServer{t: t, lines: map[int64]api.AgentLogLine{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/agent/runs/{id}/attempts/{n}/logs", ls.handle)
	ls.srv = httptest.NewServer(mux)
	t.Cleanup(ls.srv.Close)
	return ls
}

func (ls *logServer) handle(w http.ResponseWriter, r *http.Request) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.requests++
	if r.Header.Get("Authorization") != "Bearer pdn_x" {
		ls.badAuth = true
	}
	if r.PathValue("id") != "run-1" || r.PathValue("n") != "2" {
		ls.t.Errorf("logs posted to %s", r.URL.Path)
	}
	body, _ := io.ReadAll(r.Body)
	if len(body) > api.MaxLogBatchBytes {
		ls.t.Errorf("a batch of %d bytes, more than %d", len(body), api.MaxLogBatchBytes)
	}
	var in api.AgentLogs
	if err := json.Unmarshal(body, &in); err != nil {
		ls.t.Errorf("decoding a log batch: %v", err)
		writeError(w, http.StatusBadRequest)
		return
	}
	ls.posted += len(in.Lines)
	if ls.status != 0 {
		writeError(w, ls.status)
		return
	}
	if ls.refuse > 0 {
		ls.refuse--
		writeError(w, http.StatusRequestEntityTooLarge)
		return
	}
	if ls.down || ls.failures > 0 {
		if ls.failures > 0 {
			ls.failures--
		}
		writeError(w, http.StatusServiceUnavailable)
		return
	}
	if len(in.Lines) > api.MaxLogBatchLines {
		ls.t.Errorf("a batch of %d lines, more than %d", len(in.Lines), api.MaxLogBatchLines)
	}
	if ls.acceptAt > 0 && len(in.Lines) > int(ls.acceptAt) {
		in.Lines = in.Lines[:ls.acceptAt]
	}
	ls.received += len(in.Lines)
	for _, l := range in.Lines {
		if _, ok := ls.lines[l.N]; !ok {
			ls.lines[l.N] = l
			ls.order = append(ls.order, l.N)
		}
	}
	var ack int64
	for n := range ls.lines {
		ack = max(ack, n)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(api.LogAckBody{Ack: ack})
}

func writeError(w http.ResponseWriter, status int) {
	code := map[int]api.Code{http.StatusConflict: api.CodeConflict, http.StatusNotFound: api.CodeNotFound,
		http.StatusRequestEntityTooLarge: api.CodeTooLarge,
		http.StatusInsufficientStorage:   api.CodeInsufficientStorage}[status]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if code != "" {
		json.NewEncoder(w).Encode(api.ErrorBody{Error: &api.Error{Code: code, Message: "attempt 2 of run run-1 is no longer current"}})
	}
}

func (ls *logServer) stats() (requests, posted, received int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.requests, ls.posted, ls.received
}

// checkStored checks that the server stored exactly lines first..last, in
// order, with the texts text(n).
func (ls *logServer) checkStored(t *testing.T, first, last int64, text func(n int64) string) {
	t.Helper()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.badAuth {
		t.Error("a request came without the node token")
	}
	if want := int(last - first + 1); len(ls.order) != want {
		t.Errorf("server stored %d lines, want %d", len(ls.order), want)
	}
	for i, n := range ls.order {
		if n != first+int64(i) {
			t.Fatalf("stored line #%d is number %d, want %d (out of order or a gap)", i, n, first+int64(i))
		}
		if got, want := ls.lines[n].Text, text(n); got != want {
			t.Fatalf("line %d = %q, want %q", n, got, want)
		}
	}
}

func testAgent(url string) *Agent {
	a := &Agent{cfg: Config{Server: url}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a.client.Store(api.NewAgentClient(url, "pdn_x"))
	a.uploads.Store(api.NewAgentClient(url, "pdn_x")) // refreshServer sets both after a failure
	return a
}

// ship writes the lines through a stdout writer of a running shipper.
func ship(t *testing.T, ctx context.Context, a *Agent, ack int64, lines []string) *shipper {
	t.Helper()
	s := newShipper(a, api.AttemptRef{RunID: "run-1", Attempt: 2}, ack)
	go s.run(ctx)
	w := s.writer("stdout")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return s
}

func lineText(n int64) string { return fmt.Sprintf("line %d", n) }

func numbered(first, last int64) []string {
	var out []string
	for n := first; n <= last; n++ {
		out = append(out, lineText(n))
	}
	return out
}

func TestShipperDeliversEveryLineOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		failures  int
		acceptAt  most
		ack       int64 // the ack the attempt was assigned with
		count     int64
		wantRetry bool
	}{
		{"server up", 0, 0, 0, 50, false},
		{"first requests fail with 503", 3, 0, 0, 50, true},
		{"more lines than a batch", 0, 0, 0, 2*api.MaxLogBatchLines + 7, false},
		{"batches after failures", 2, 0, 0, api.MaxLogBatchLines + 10, true},
		{"server stores part of each batch", 0, 3, 0, 20, true},
		{"resuming after an ack", 1, 0, 40, 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			ls := newLogServer(t)
			ls.failures, ls.acceptAt = tt.failures, tt.acceptAt
			for n := int64(1); n <= tt.ack; n++ { // what an earlier agent sent
				ls.lines[n] = api.AgentLogLine{N: n, Text: lineText(n)}
				ls.order = append(ls.order, n)
			}
			first, last := tt.ack+1, tt.ack+tt.count
			s := ship(t, ctx, testAgent(ls.srv.URL), tt.ack, numbered(first, last))
			s.close()
			if !s.wait(ctx) {
				t.Fatal("wait = false, want every line acknowledged")
			}
			ls.checkStored(t, 1, last, lineText)
			requests, posted, _ := ls.stats()
			if tt.wantRetry && (posted <= int(tt.count) || requests <= tt.failures) {
				t.Errorf("%d requests, %d lines posted for %d lines: no resend after failures", requests, posted, tt.count)
			}
			if !tt.wantRetry && posted != int(tt.count) {
				t.Errorf("%d lines posted for %d lines: resent with the server up", posted, tt.count)
			}
			s.mu.Lock()
			if len(s.lines) != 0 || s.acked != last {
				t.Errorf("shipper keeps %d lines, acked %d; want 0, %d", len(s.lines), s.acked, last)
			}
			s.mu.Unlock()
		})
	}
}

func TestShipperSendsLinesAddedWhileWaiting(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ls := newLogServer(t)
	s := ship(t, ctx, testAgent(ls.srv.URL), 0, numbered(1, 3))
	deadline := time.Now().Add(10 * time.Second)
	for { // the first lines go out before the attempt ends
		if _, _, received := ls.stats(); received >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lines were not sent while the attempt runs")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w := s.writer("stderr")
	fmt.Fprint(w, "line 4\nline 5")
	s.flushWriters()
	s.close()
	if !s.wait(ctx) {
		t.Fatal("wait = false")
	}
	ls.checkStored(t, 1, 5, lineText)
}

func TestShipperStopsOnConflict(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusConflict, http.StatusNotFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			ls := newLogServer(t)
			ls.status = status
			s := ship(t, ctx, testAgent(ls.srv.URL), 0, numbered(1, 5))
			select {
			case <-s.done:
			case <-ctx.Done():
				t.Fatal("the shipper kept going after the attempt became stale")
			}
			s.add("stdout", "after")
			s.close()
			if s.wait(ctx) {
				t.Error("wait = true, want false: the lines were never stored")
			}
			time.Sleep(100 * time.Millisecond)
			if requests, _, _ := ls.stats(); requests != 1 {
				t.Errorf("%d requests, want 1: nothing is sent after a %d", requests, status)
			}
		})
	}
}

func TestShipperAbandon(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ls := newLogServer(t)
	ls.down = true
	s := ship(t, ctx, testAgent(ls.srv.URL), 0, numbered(1, 5))
	s.abandon()
	if s.wait(ctx) {
		t.Error("wait = true after abandon with lines unsent")
	}
}

func TestShipperWaitEndsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ls := newLogServer(t)
	ls.down = true
	s := ship(t, ctx, testAgent(ls.srv.URL), 0, numbered(1, 5))
	s.close()
	waitCtx, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	defer stop()
	if s.wait(waitCtx) {
		t.Error("wait = true while the server is down")
	}
	// Once the server is back, everything arrives.
	ls.mu.Lock()
	ls.down = false
	ls.mu.Unlock()
	if !s.wait(ctx) {
		t.Fatal("wait = false after the server came back")
	}
	ls.checkStored(t, 1, 5, lineText)
}

// While the server is away the buffer keeps the newest maxBufferLines lines
// and a marker says older ones were dropped.
func TestShipperBufferCap(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ls := newLogServer(t)
	ls.down = true
	a := testAgent(ls.srv.URL)
	s := newShipper(a, api.AttemptRef{RunID: "run-1", Attempt: 2}, 0)
	const extra = 5
	for n := int64(1); n <= maxBufferLines+extra; n++ {
		s.add("stdout", lineText(n))
	}
	go s.run(ctx)
	s.close()
	time.Sleep(50 * time.Millisecond)
	ls.mu.Lock()
	ls.down = false
	ls.mu.Unlock()
	if !s.wait(ctx) {
		t.Fatal("wait = false")
	}
	ls.checkStored(t, extra, maxBufferLines+extra, func(n int64) string {
		if n == extra {
			return "[paddock] log buffer full while the server was unreachable: older lines were dropped"
		}
		return lineText(n)
	})
	ls.mu.Lock()
	if l := ls.lines[extra]; l.Stream != "stderr" || !strings.HasPrefix(l.Text, "[paddock]") {
		t.Errorf("marker line = %+v", l)
	}
	ls.mu.Unlock()
}

// A server that cannot store the log (507) ends the shipping at once and
// says so once; waiting does not hang.
func TestShipperStopsWhenTheServerIsFull(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ls := newLogServer(t)
	ls.status = http.StatusInsufficientStorage
	full := make(chan error, 2)
	s := newShipper(testAgent(ls.srv.URL), api.AttemptRef{RunID: "run-1", Attempt: 2}, 0)
	s.onFull = func(err error) { full <- err }
	go s.run(ctx)
	w := s.writer("stdout")
	fmt.Fprintln(w, "one")
	select {
	case err := <-full:
		if !errors.Is(err, api.ErrInsufficientStorage) {
			t.Errorf("onFull got %v", err)
		}
	case <-ctx.Done():
		t.Fatal("onFull was not called")
	}
	fmt.Fprintln(w, "two")
	s.close()
	waited := make(chan bool, 1)
	go func() { waited <- s.wait(ctx) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("wait hangs after the server said its disk is full")
	}
	if len(full) != 0 {
		t.Error("onFull called more than once")
	}
}

// A batch the server refuses for what it is (413, 400) is not sent again
// for ever: one line says it was lost, and the lines after it go on.
func TestShipperReplacesARefusedBatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ls := newLogServer(t)
	ls.refuse = 1
	s := ship(t, ctx, testAgent(ls.srv.URL), 0, numbered(1, 3))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) { // the first batch goes (and is refused) alone
		if requests, _, _ := ls.stats(); requests >= 2 || time.Now().After(deadline) {
			break
		}
	}
	for _, l := range numbered(4, 5) {
		s.add("stdout", l)
	}
	s.close()
	if !s.wait(ctx) {
		t.Fatal("the lines after the refused batch were not delivered")
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var texts []string
	for _, n := range ls.order {
		texts = append(texts, ls.lines[n].Text)
	}
	if len(texts) < 3 || !strings.HasPrefix(texts[0], refusedMarker) || texts[len(texts)-1] != numbered(5, 5)[0] {
		t.Errorf("stored %q; want the marker, then the later lines", texts)
	}
}
