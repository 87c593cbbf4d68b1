package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/dispatch"
	"github.com/paddock-ml/paddock/internal/runs"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/targets"
	"github.com/paddock-ml/paddock/internal/testenv"
	tokens "github.com/paddock-ml/paddock/internal/token"
)

// tokenServer is the real API over a real store and dispatcher, with one
// node ("n1") running two runs, and the tokens of each party.
type tokenServer struct {
	url              string
	disp             *dispatch.Dispatcher
	admin, nodeToken string
	runA, runB       string
}

func newTokenServer(t *testing.T) *tokenServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	st, box := testenv.Store(t), testenv.Box(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := func() time.Time { return time.Now().UTC() }
	ws := &targets.Service{Store: st, Box: box, Sizes: testenv.Sizes(t)}
	if err := ws.EnsureBuiltins(ctx, "default", "admin"); err != nil {
		t.Fatal(err)
	}
	disp := dispatch.New(st, box, log, nil, dispatch.Options{APIURL: "http://paddock.test"})
	if err := disp.Load(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Go(t, disp.Run)

	s := &tokenServer{disp: disp, admin: testenv.Admin(t, st), nodeToken: tokens.NodePrefix + "test-node-token"}
	if err := disp.AddNode(ctx, store.Node{ID: "n1", Workspace: "default", Compute: "local", TokenHash: tokens.Hash(s.nodeToken), CreatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := disp.Hello(ctx, "n1", api.AgentHello{Hostname: "n1", Cores: 4, MemoryGB: 8, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []*string{&s.runA, &s.runB} {
		r, err := disp.Submit(ctx, store.Run{Workspace: "default", Run: api.Run{Compute: "local", Command: []string{"true"},
			CreatedBy: "admin", NodeCount: 1, Resources: api.Resources{Cores: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		*id = r.ID
	}
	if w, _, err := disp.Poll(ctx, "n1", nil, 0); err != nil || len(w.Assignments) != 2 {
		t.Fatalf("the node was given %+v, %v; want both runs", w.Assignments, err)
	}
	for _, id := range []string{s.runA, s.runB} {
		if err := disp.Report(ctx, "n1", api.AttemptRef{RunID: id, Attempt: 1}, api.AttemptReport{Status: api.RunRunning}); err != nil {
			t.Fatal(err)
		}
	}
	rs := &runs.Service{Store: st, Dispatch: disp, Computes: ws, Log: log}
	srv := httptest.NewServer(NewAPI(Deps{Targets: ws, Runs: rs, Store: st, Dispatch: disp, Log: log}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// do sends a request with a bearer token and returns the status code.
func (s *tokenServer) do(t *testing.T, method, path, token, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// A run token posts metrics for its own run, while its attempt is current,
// and does nothing else: not another run's metrics, not logs (which are
// the node's), not reads.
func TestRunTokenIsForItsOwnRunOnly(t *testing.T) {
	t.Parallel()
	s := newTokenServer(t)
	tokA := s.disp.RunToken(s.runA, 1)
	runs := "/api/v1/workspaces/default/runs/"
	metric := `{"name":"accuracy","value":0.5}`
	logs := `{"lines":[{"n":1,"stream":"stdout","t":1,"text":"forged"}]}`
	sig := tokA[strings.LastIndex(tokA, ".")+1:]
	tests := []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"its own run's metrics", "POST", runs + s.runA + "/metrics", tokA, metric, http.StatusCreated},
		{"another run's metrics", "POST", runs + s.runB + "/metrics", tokA, metric, http.StatusForbidden},
		{"its run in another workspace", "POST", "/api/v1/workspaces/other/runs/" + s.runA + "/metrics", tokA, metric, http.StatusForbidden},
		{"its own run's logs, read", "GET", runs + s.runA + "/logs", tokA, "", http.StatusForbidden},
		{"its own run's metrics, read", "GET", runs + s.runA + "/metrics", tokA, "", http.StatusForbidden},
		{"its own run's log lines, written", "POST", "/api/v1/agent/runs/" + s.runA + "/attempts/1/logs", tokA, logs, http.StatusForbidden},
		{"another run's log lines, written", "POST", "/api/v1/agent/runs/" + s.runB + "/attempts/1/logs", tokA, logs, http.StatusForbidden},
		{"its own run's status", "POST", "/api/v1/agent/runs/" + s.runA + "/attempts/1/status", tokA, `{"status":"Completed"}`, http.StatusForbidden},
		{"a run submitted", "POST", "/api/v1/workspaces/default/runs", tokA, `{"compute":"local","command":["true"]}`, http.StatusForbidden},
		{"another run's token made from its signature", "POST", runs + s.runB + "/metrics", "pdr_" + s.runB + ".1." + sig, metric, http.StatusUnauthorized},
		{"an attempt that is not current", "POST", runs + s.runA + "/metrics", s.disp.RunToken(s.runA, 2), metric, http.StatusUnauthorized},
		{"a node token on a run's metrics", "POST", runs + s.runA + "/metrics", s.nodeToken, metric, http.StatusForbidden},
		{"a user token on the agent's routes", "POST", "/api/v1/agent/runs/" + s.runA + "/attempts/1/logs", s.admin, logs, http.StatusForbidden},
	}
	for _, tc := range tests {
		if got := s.do(t, tc.method, tc.path, tc.token, tc.body); got != tc.want {
			t.Errorf("%s: %s %s: HTTP %d, want %d", tc.name, tc.method, tc.path, got, tc.want)
		}
	}
	// Nothing reached run B, and A has exactly its own metric.
	c := api.NewClient(s.url, s.admin, "default")
	for id, want := range map[string]int{s.runA: 1, s.runB: 0} {
		ms, err := c.Metrics(t.Context(), id)
		if err != nil || len(ms) != want || want == 1 && ms[0].Name != "accuracy" {
			t.Errorf("metrics of %s: %+v %v, want %d", id, ms, err, want)
		}
	}

	// Once its run has ended, the token is refused.
	zero := 0
	if err := s.disp.Report(t.Context(), "n1", api.AttemptRef{RunID: s.runA, Attempt: 1}, api.AttemptReport{Status: api.RunCompleted, ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	if got := s.do(t, "POST", runs+s.runA+"/metrics", tokA, metric); got != http.StatusUnauthorized {
		t.Errorf("a metric after the run ended: HTTP %d, want 401", got)
	}
}
