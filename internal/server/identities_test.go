package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/testenv"
	tokens "github.com/paddock-ml/paddock/internal/token"
)

// The identity routes end to end in-process: secrets go in and never come
// back out, except in a credential to the agent of the node that runs an
// attempt holding the identity, while it runs; the identity token that
// comes with it is taken by one route only, and only while the attempt runs.
func TestIdentityRoutes(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	const ws = "/api/v1/workspaces/default"
	rec := s.serve(request("POST", ws+"/identities", s.token, jsonBody(api.IdentityCreate{Name: "blob-reader",
		Secrets: map[string]string{"TOKEN": "s3cret-value"}})))
	if rec.Code != http.StatusCreated || strings.Contains(rec.Body.String(), "s3cret-value") || rec.Header().Get("Location") != ws+"/identities/blob-reader" {
		t.Fatalf("create: %d %s %q", rec.Code, rec.Body, rec.Header().Get("Location"))
	}
	rec = s.serve(request("POST", ws+"/identities", s.token, strings.NewReader(`{"name":"x-id","secret":{"A":"b"}}`)))
	if e := errorOf(t, rec, http.StatusBadRequest); e.Field != "secret" {
		t.Fatalf("an unknown field: %+v", e)
	}
	for _, path := range []string{ws + "/identities", ws + "/identities/BLOB-READER"} {
		rec = s.serve(request("GET", path, s.token, nil))
		if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "s3cret-value") || !strings.Contains(rec.Body.String(), `"secret_keys":["TOKEN"]`) {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
	}

	// A cluster holding it, with one node, running one run.
	ctx := s.ctx
	props, _ := json.Marshal(map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 1, "identity_type": "UserAssigned", "identity_id": []string{"blob-reader"}})
	if _, err := s.ws.CreateCompute(ctx, "default", "admin", api.ComputeCreate{Name: "idc", Type: "cluster", Properties: props}); err != nil {
		t.Fatal(err)
	}
	testenv.Provisioned(t, s.st, "default", "idc")
	nodeTok := tokens.NewNode()
	if err := s.disp.AddNode(ctx, store.Node{ID: "idc-1", Workspace: "default", Compute: "idc", TokenHash: tokens.Hash(nodeTok), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.disp.Hello(ctx, "idc-1", api.AgentHello{Hostname: "idc-1", Cores: 2, MemoryGB: 7}); err != nil {
		t.Fatal(err)
	}
	otherTok := s.addNode("local-1")
	run, err := s.ws.ValidateRun(ctx, "default", "admin", api.RunSubmit{Compute: "idc", Command: []string{"true"}}, s.art.HasSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	if run, err = s.disp.Submit(ctx, run); err != nil {
		t.Fatal(err)
	}
	work, _, err := s.disp.Poll(ctx, "idc-1", nil, 0)
	if err != nil || len(work.Assignments) != 1 || strings.Join(work.Assignments[0].Identities, ",") != "blob-reader" {
		t.Fatalf("assignment: %+v, %v", work.Assignments, err)
	}
	if strings.Contains(jsonText(work), "s3cret-value") {
		t.Fatal("the assignment carries the identity's secret")
	}

	credPath := "/api/v1/agent/runs/" + run.ID + "/attempts/1/identity"
	ask := func(token, identity string) *httpResult {
		return result(s.serve(request("POST", credPath, token, jsonBody(api.AgentIdentityRequest{Identity: identity}))))
	}
	r := ask(nodeTok, "blob-reader")
	var cred api.IdentityCredential
	if r.code != http.StatusOK || json.Unmarshal([]byte(r.body), &cred) != nil || cred.Secrets["TOKEN"] != "s3cret-value" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("credential: %d %s", r.code, r.body)
	}
	if r := ask(otherTok, "blob-reader"); r.code != http.StatusConflict {
		t.Fatalf("another node's agent asking: %d %s", r.code, r.body)
	}
	if r := ask(nodeTok, "other-key"); r.code != http.StatusForbidden {
		t.Fatalf("an identity the run does not hold: %d %s", r.code, r.body)
	}
	if r := ask(s.token, "blob-reader"); r.code != http.StatusForbidden {
		t.Fatalf("a user token on the agent route: %d %s", r.code, r.body)
	}

	whoami := func(token string) *httpResult {
		return result(s.serve(request("GET", "/api/v1/identity/token", token, nil)))
	}
	if r := whoami(cred.Token); r.code != http.StatusOK || !strings.Contains(r.body, run.ID) || strings.Contains(r.body, "s3cret") {
		t.Fatalf("identity token info: %d %s", r.code, r.body)
	}
	if r := whoami(s.token); r.code != http.StatusUnauthorized {
		t.Fatalf("a user token on the identity token route: %d %s", r.code, r.body)
	}
	if r := result(s.serve(request("GET", ws+"/computes", cred.Token, nil))); r.code != http.StatusForbidden {
		t.Fatalf("an identity token on a user route: %d %s", r.code, r.body)
	}

	rec = s.serve(request("DELETE", ws+"/identities/blob-reader", s.token, nil))
	if e := errorOf(t, rec, http.StatusConflict); !strings.Contains(e.Message, "idc") {
		t.Fatalf("deleting an identity in use: %s", e.Message)
	}

	// The run ends: its agent gets no more credentials, its token is done.
	if err := s.disp.Report(ctx, "idc-1", api.AttemptRef{RunID: run.ID, Attempt: 1}, api.AttemptReport{Status: api.RunCompleted}); err != nil {
		t.Fatal(err)
	}
	if r := ask(nodeTok, "blob-reader"); r.code != http.StatusConflict {
		t.Fatalf("a credential after the run ended: %d %s", r.code, r.body)
	}
	if r := whoami(cred.Token); r.code != http.StatusUnauthorized {
		t.Fatalf("the identity token after the run ended: %d %s", r.code, r.body)
	}
}

// Only admins change the workspace policy; everyone reads it.
func TestWorkspacePolicyRoutes(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	u, err := s.api.users.Add(s.ctx, "default", api.UserCreate{Name: "bob"}) // a Contributor
	if err != nil {
		t.Fatal(err)
	}
	bob := u.Token
	body := `{"policy":{"max_idle_time_before_shutdown":"2h","max_run_duration_seconds":3600}}`
	rec := s.serve(request("PATCH", "/api/v1/workspaces/default", bob, strings.NewReader(body)))
	errorOf(t, rec, http.StatusForbidden)
	rec = s.serve(request("PATCH", "/api/v1/workspaces/default", s.token, strings.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("admin: %d %s", rec.Code, rec.Body)
	}
	rec = s.serve(request("GET", "/api/v1/workspaces/default", bob, nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"max_run_duration_seconds":3600`) {
		t.Fatalf("bob reading: %d %s", rec.Code, rec.Body)
	}
	rec = s.serve(request("PATCH", "/api/v1/workspaces/default", s.token, strings.NewReader(`{"policy":{"max_run_duration_seconds":-5}}`)))
	if e := errorOf(t, rec, http.StatusBadRequest); e.Field != "max_run_duration_seconds" {
		t.Fatalf("a negative limit: %+v", e)
	}
	rec = s.serve(request("GET", "/api/v1/workspaces/nope", s.token, nil))
	errorOf(t, rec, http.StatusNotFound)
}

type httpResult struct {
	code   int
	body   string
	header http.Header
}

func result(rec *httptest.ResponseRecorder) *httpResult {
	return &httpResult{code: rec.Code, body: rec.Body.String(), header: rec.Header()}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
