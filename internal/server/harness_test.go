package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/artifact"
	"github.com/paddock-ml/paddock/internal/dispatch"
	"github.com/paddock-ml/paddock/internal/runs"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/targets"
	"github.com/paddock-ml/paddock/internal/testenv"
	tokens "github.com/paddock-ml/paddock/internal/token"
)

// testServer is the real API over a real SQLite store, dispatcher and
// artifact store, served in-process; nodes are added by hand, without
// agents, so a test plays the agent.
type testServer struct {
	t     testing.TB
	ctx   context.Context
	api   *API
	st    *sqlite.Store
	disp  *dispatch.Dispatcher
	art   *artifact.Store
	ws    *targets.Service
	token string // the admin's
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	st, box, sizes := testenv.Store(t), testenv.Box(t), testenv.Sizes(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	disp := dispatch.New(st, box, log, nil, dispatch.Options{APIURL: "http://paddock.test"})
	if err := disp.Load(ctx); err != nil {
		t.Fatal(err)
	}
	loop, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { disp.Run(loop); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	ws := &targets.Service{Store: st, Box: box, Sizes: sizes,
		ActiveRuns: disp.ActiveRuns, CancelRun: disp.CancelRun, Nodes: disp.Nodes}
	if err := ws.EnsureBuiltins(ctx, "default", "admin"); err != nil {
		t.Fatal(err)
	}
	token := testenv.Admin(t, st)
	art, err := artifact.New(filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	rs := &runs.Service{Store: st, Dispatch: disp, Computes: ws, HasSource: art.HasSnapshot, HasFile: art.HasRunFile, Log: log}
	a := NewAPI(Deps{Targets: ws, Runs: rs, Store: st, Dispatch: disp, Artifacts: art, Log: log, Nodes: noNodes{}})
	return &testServer{t: t, ctx: ctx, api: a, st: st, disp: disp, art: art, ws: ws, token: token}
}

// addNode adds a ready node of the local target with its agent's token.
func (s *testServer) addNode(id string) string {
	s.t.Helper()
	token := tokens.NewNode()
	if err := s.disp.AddNode(s.ctx, store.Node{ID: id, Workspace: "default", Compute: "local", TokenHash: tokens.Hash(token), CreatedAt: time.Now().UTC()}); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.disp.Hello(s.ctx, id, api.AgentHello{Hostname: id, Cores: 1, MemoryGB: 2}); err != nil {
		s.t.Fatal(err)
	}
	return token
}

// placedRun submits a one-core run to the local target and returns it once
// node (the only node with room) has been given it.
func (s *testServer) placedRun(node, source string) store.Run {
	s.t.Helper()
	run, err := s.ws.ValidateRun(s.ctx, "default", "admin", api.RunSubmit{Compute: "local", Command: []string{"true"}, Source: source}, s.art.HasSnapshot)
	if err != nil {
		s.t.Fatal(err)
	}
	run, err = s.disp.Submit(s.ctx, run)
	if err != nil {
		s.t.Fatal(err)
	}
	work, _, err := s.disp.Poll(s.ctx, node, nil, 0)
	if err != nil || len(work.Assignments) != 1 || work.Assignments[0].RunID != run.ID {
		s.t.Fatalf("polling %s for run %s: %+v, %v", node, run.ID, work, err)
	}
	run, err = s.st.GetRun(s.ctx, "default", run.ID)
	if err != nil {
		s.t.Fatal(err)
	}
	return run
}

// request builds a request with an optional bearer token.
func request(method, path, token string, body io.Reader) *http.Request {
	req := httptest.NewRequest(method, path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// serve sends a request to the API in-process and returns the response.
func (s *testServer) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.api.ServeHTTP(rec, req)
	return rec
}

// jsonBody encodes v for a request.
func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// errorOf decodes an error response, failing unless it has the status and
// code that go together.
func errorOf(t *testing.T, rec *httptest.ResponseRecorder, status int) *api.Error {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == nil {
		t.Fatalf("status %d, body %q: not an error body (%v)", rec.Code, rec.Body.String(), err)
	}
	if rec.Code != status || eb.Error.Code.HTTPStatus() != status {
		t.Fatalf("status %d code %s (%s), want status %d", rec.Code, eb.Error.Code, eb.Error.Message, status)
	}
	return eb.Error
}

// noNodes is a node controller with no nodes to preempt.
type noNodes struct{}

func (noNodes) Preempt(_ context.Context, _, _, node string) error {
	return api.NotFound("no node %s", node)
}
