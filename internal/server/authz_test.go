package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
)

// matrixFixture is a workspace with a user of each role and, for each
// of admin and the Contributor, a cluster, an instance and a run of
// their own.
type matrixFixture struct {
	s      *testServer
	tokens map[authz.Role]string
	runs   map[string]string // owner → run id
}

func newMatrixFixture(t *testing.T) *matrixFixture {
	f := &matrixFixture{s: newTestServer(t), tokens: map[authz.Role]string{}, runs: map[string]string{}}
	for _, r := range authz.Roles() {
		u, err := f.s.api.users.Add(f.s.ctx, "default", api.UserCreate{Name: strings.ToLower(string(r)), Role: string(r)})
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[r] = u.Token
	}
	if _, err := f.s.api.users.Add(f.s.ctx, "default", api.UserCreate{Name: "victim"}); err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{"admin", "contributor"} {
		p := authz.Principal{User: owner, Role: authz.Contributor}
		for _, c := range []api.ComputeCreate{
			{Name: owner + "-cpu", Type: "cluster", Properties: json.RawMessage(`{"vm_size":"STANDARD_D2_V2","max_nodes":2}`)},
			{Name: owner + "-box", Type: "instance", Properties: json.RawMessage(`{"vm_size":"STANDARD_D2_V2"}`)},
		} {
			if _, err := f.s.ws.CreateCompute(f.s.ctx, "default", p.User, c); err != nil {
				t.Fatal(err)
			}
			rec, err := f.s.st.GetCompute(f.s.ctx, "default", c.Name)
			if err != nil {
				t.Fatal(err)
			}
			rec.State = api.StateSucceeded
			if c.Type == "instance" {
				rec.Status = json.RawMessage(`{"state":"Running"}`)
			}
			if err := f.s.st.UpdateCompute(f.s.ctx, &rec); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.s.api.identities.Create(f.s.ctx, "default", p, api.IdentityCreate{Name: owner + "-key"}); err != nil {
			t.Fatal(err)
		}
		run, err := f.s.ws.ValidateRun(f.s.ctx, "default", owner, api.RunSubmit{Compute: "local", Command: []string{"sleep", "60"}}, f.s.art.HasSnapshot)
		if err != nil {
			t.Fatal(err)
		}
		if run, err = f.s.disp.Submit(f.s.ctx, run); err != nil {
			t.Fatal(err)
		}
		f.runs[owner] = run.ID
	}
	return f
}

// matrixRequest is how the test calls a route: its path for records owned
// by owner, and a body a handler accepts (so a refusal is the role's, not
// the body's).
func matrixRequest(pattern, owner, runID string) (method, path string, body any) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.NewReplacer("{ws}", "default", "{digest}", strings.Repeat("a", 64), "{node}", "n1:preempt", "{path...}", "notes.txt").Replace(path)
	switch {
	case strings.HasSuffix(pattern, "/users/{name}"):
		path = strings.Replace(path, "{name}", "victim", 1)
		if method == http.MethodPatch {
			body = api.UserUpdate{Role: "Reader"}
		}
	case strings.Contains(pattern, "/identities/{name}"):
		path = strings.Replace(path, "{name}", owner+"-key", 1)
		if method == http.MethodPatch {
			d := "changed"
			body = api.IdentityUpdate{Description: &d}
		}
	case pattern == "POST /api/v1/workspaces/{ws}/identities":
		body = api.IdentityCreate{Name: "new-" + owner + "-key"}
	case pattern == "PATCH /api/v1/workspaces/{ws}":
		n := int64(3600)
		var u api.PolicyUpdate
		u.Policy.MaxRunDurationSeconds = &n
		body = u
	case strings.Contains(pattern, "/nodes"):
		path = strings.Replace(path, "{name}", owner+"-cpu", 1)
	case pattern == "POST /api/v1/workspaces/{ws}/computes/{name}":
		path = strings.Replace(path, "{name}", owner+"-box:stop", 1)
	case strings.Contains(pattern, "{name}"):
		path = strings.Replace(path, "{name}", owner+"-cpu", 1)
		if method == http.MethodPatch {
			body = api.ComputeUpdate{Properties: json.RawMessage(`{"max_nodes":3}`)}
		}
	case pattern == "POST /api/v1/workspaces/{ws}/runs/{id}":
		path = strings.Replace(path, "{id}", runID+":cancel", 1)
	case strings.Contains(pattern, "{id}"):
		path = strings.Replace(path, "{id}", runID, 1)
		switch method {
		case http.MethodPost:
			v := 1.0
			body = api.MetricPost{Name: "loss", Value: &v}
		case http.MethodPatch:
			v := "yes"
			body = api.RunUpdate{Tags: map[string]*string{"checked": &v}}
		case http.MethodPut:
			body = "a file"
		}
	case pattern == "POST /api/v1/workspaces/{ws}/environments":
		body = api.EnvironmentRegister{Name: "env-" + owner, Environment: api.Environment{Requirements: "six\n"}}
	case pattern == "POST /api/v1/workspaces/{ws}/computes":
		body = api.ComputeCreate{Name: "new-" + owner, Type: "cluster", Properties: json.RawMessage(`{"vm_size":"STANDARD_D2_V2","max_nodes":1}`)}
	case pattern == "POST /api/v1/workspaces/{ws}/runs":
		body = api.RunSubmit{Compute: "local", Command: []string{"true"}}
	case pattern == "POST /api/v1/workspaces/{ws}/users":
		body = api.UserCreate{Name: "new-user"}
	case pattern == "PUT /api/v1/workspaces/{ws}/quotas":
		n := 100
		body = api.QuotaSet{DedicatedCores: &n}
	}
	return method, path, body
}

// wantActions is the action each workspace route performs, written out
// here so a route registered with the wrong one fails.
var wantActions = map[string]authz.Action{
	"GET /api/v1/workspaces/{ws}/computes":                      authz.ReadCompute,
	"POST /api/v1/workspaces/{ws}/computes":                     authz.WriteCompute,
	"GET /api/v1/workspaces/{ws}/computes/{name}":               authz.ReadCompute,
	"PATCH /api/v1/workspaces/{ws}/computes/{name}":             authz.WriteCompute,
	"DELETE /api/v1/workspaces/{ws}/computes/{name}":            authz.DeleteCompute,
	"POST /api/v1/workspaces/{ws}/computes/{name}":              authz.OperateCompute,
	"GET /api/v1/workspaces/{ws}/computes/{name}/nodes":         authz.ReadCompute,
	"POST /api/v1/workspaces/{ws}/computes/{name}/nodes/{node}": authz.PreemptNode,
	"GET /api/v1/workspaces/{ws}/sizes":                         authz.ReadCompute,
	"GET /api/v1/workspaces/{ws}/quotas":                        authz.ReadCompute,
	"PUT /api/v1/workspaces/{ws}/quotas":                        authz.WriteQuota,
	"PUT /api/v1/workspaces/{ws}/snapshots":                     authz.SubmitRun,
	"HEAD /api/v1/workspaces/{ws}/snapshots/{digest}":           authz.SubmitRun,
	"GET /api/v1/workspaces/{ws}/runs":                          authz.ReadRun,
	"POST /api/v1/workspaces/{ws}/runs":                         authz.SubmitRun,
	"GET /api/v1/workspaces/{ws}/runs/{id}":                     authz.ReadRun,
	"POST /api/v1/workspaces/{ws}/runs/{id}":                    authz.CancelRun,
	"PATCH /api/v1/workspaces/{ws}/runs/{id}":                   authz.WriteMetrics,
	"GET /api/v1/workspaces/{ws}/runs/{id}/files":               authz.ReadRun,
	"GET /api/v1/workspaces/{ws}/runs/{id}/files/{path...}":     authz.ReadRun,
	"PUT /api/v1/workspaces/{ws}/runs/{id}/files/{path...}":     authz.WriteMetrics,
	"GET /api/v1/workspaces/{ws}/environments":                  authz.ReadRun,
	"POST /api/v1/workspaces/{ws}/environments":                 authz.SubmitRun,
	"GET /api/v1/workspaces/{ws}/environments/{name}":           authz.ReadRun,
	"GET /api/v1/workspaces/{ws}/runs/{id}/logs":                authz.ReadRun,
	"GET /api/v1/workspaces/{ws}/runs/{id}/metrics":             authz.ReadRun,
	"POST /api/v1/workspaces/{ws}/runs/{id}/metrics":            authz.WriteMetrics,
	"GET /api/v1/workspaces/{ws}/runs/{id}/outputs":             authz.ReadRun,
	"GET /api/v1/workspaces/{ws}/users":                         authz.ReadUsers,
	"POST /api/v1/workspaces/{ws}/users":                        authz.WriteUsers,
	"PATCH /api/v1/workspaces/{ws}/users/{name}":                authz.WriteUsers,
	"DELETE /api/v1/workspaces/{ws}/users/{name}":               authz.WriteUsers,
	"GET /api/v1/workspaces/{ws}/audit":                         authz.ReadAudit,
	"GET /api/v1/workspaces/{ws}/audit/verify":                  authz.ReadAudit,
	"GET /api/v1/workspaces/{ws}":                               authz.ReadCompute,
	"PATCH /api/v1/workspaces/{ws}":                             authz.WriteWorkspace,
	"GET /api/v1/workspaces/{ws}/identities":                    authz.ReadCompute,
	"POST /api/v1/workspaces/{ws}/identities":                   authz.WriteIdentity,
	"GET /api/v1/workspaces/{ws}/identities/{name}":             authz.ReadCompute,
	"PATCH /api/v1/workspaces/{ws}/identities/{name}":           authz.WriteIdentity,
	"DELETE /api/v1/workspaces/{ws}/identities/{name}":          authz.WriteIdentity,
}

// creates are the routes that make a record: it is the caller's own.
var creates = map[string]bool{
	"POST /api/v1/workspaces/{ws}/computes":   true,
	"POST /api/v1/workspaces/{ws}/runs":       true,
	"POST /api/v1/workspaces/{ws}/identities": true,
}

// Every workspace route × every role: a role the table does not allow is
// refused with 403 naming the action; an action allowed on one's own
// records only is refused on someone else's and allowed on one's own; an
// allowed action is never refused for the role. A route the router has
// and this test does not know fails it, so a new endpoint cannot ship
// without a rule.
func TestRouteRoleMatrix(t *testing.T) {
	f := newMatrixFixture(t)
	seen := 0
	for _, rt := range f.s.api.routes {
		if !rt.acc.users || !strings.Contains(rt.pattern, "{ws}") {
			continue
		}
		seen++
		if want, ok := wantActions[rt.pattern]; !ok || rt.action != want {
			t.Errorf("%s: registered with action %q; the test expects %q (add new routes to wantActions)", rt.pattern, rt.action, want)
			continue
		}
		// Least powerful first, so a deletion by an Owner comes last.
		for _, role := range []authz.Role{authz.Reader, authz.ComputeOperator, authz.Contributor, authz.Owner} {
			scope := authz.ScopeOf(role, rt.action)
			if scope == authz.Own && creates[rt.pattern] {
				scope = authz.Any // what one makes is one's own
			}
			for _, owner := range []string{"admin", "contributor"} {
				if owner == "contributor" && (role != authz.Contributor || scope != authz.Own) {
					continue
				}
				method, path, body := matrixRequest(rt.pattern, owner, f.runs[owner])
				var req *http.Request
				if body != nil {
					req = request(method, path, f.tokens[role], jsonBody(body))
				} else {
					req = request(method, path, f.tokens[role], nil)
				}
				rec := f.s.serve(req)
				refused := rec.Code == http.StatusForbidden
				var eb api.ErrorBody
				json.Unmarshal(rec.Body.Bytes(), &eb)
				msg := ""
				if eb.Error != nil {
					msg = eb.Error.Message
				}
				where := rt.pattern + " as " + string(role) + " on " + owner + "'s"
				switch {
				case scope == authz.None && (!refused || !strings.Contains(msg, string(rt.action))):
					t.Errorf("%s: %d %q, want 403 naming %s", where, rec.Code, msg, rt.action)
				case scope == authz.Own && owner == "admin" && !refused:
					t.Errorf("%s: %d %q, want 403 (not theirs)", where, rec.Code, msg)
				case scope == authz.Own && owner == "contributor" && refused:
					t.Errorf("%s: refused their own: %q", where, msg)
				case scope == authz.Any && refused:
					t.Errorf("%s: refused: %q", where, msg)
				}
			}
		}
	}
	if seen != len(wantActions) {
		t.Errorf("the router has %d workspace routes, the test knows %d", seen, len(wantActions))
	}
}

// Bob, a Contributor, cannot delete or change the admin's instance, nor
// cancel the admin's run; nothing changes.
func TestContributorCannotTouchOthers(t *testing.T) {
	f := newMatrixFixture(t)
	bob := f.tokens[authz.Contributor]
	for _, c := range []struct{ method, path string }{
		{http.MethodDelete, "/api/v1/workspaces/default/computes/admin-box"},
		{http.MethodPost, "/api/v1/workspaces/default/computes/admin-box:stop"},
		{http.MethodPost, "/api/v1/workspaces/default/runs/" + f.runs["admin"] + ":cancel"},
	} {
		rec := f.s.serve(request(c.method, c.path, bob, nil))
		e := errorOf(t, rec, http.StatusForbidden)
		if !strings.Contains(e.Message, "belongs to admin") {
			t.Errorf("%s %s: %q", c.method, c.path, e.Message)
		}
	}
	rec, err := f.s.st.GetCompute(f.s.ctx, "default", "admin-box")
	if err != nil || rec.State != api.StateSucceeded || !strings.Contains(string(rec.Status), "Running") {
		t.Fatalf("the instance changed: %+v, %v", rec, err)
	}
	run, err := f.s.st.GetRun(f.s.ctx, "default", f.runs["admin"])
	if err != nil || run.Status.Terminal() {
		t.Fatalf("the run changed: %+v, %v", run, err)
	}
}

// A user without a role in the workspace is refused everywhere in it.
func TestNoRoleNoAccess(t *testing.T) {
	f := newMatrixFixture(t)
	u, err := f.s.api.users.Add(f.s.ctx, "other", api.UserCreate{Name: "stranger"})
	if err != nil {
		t.Fatal(err)
	}
	e := errorOf(t, f.s.serve(request(http.MethodGet, "/api/v1/workspaces/default/computes", u.Token, nil)), http.StatusForbidden)
	if !strings.Contains(e.Message, "no role in workspace default") {
		t.Fatalf("message %q", e.Message)
	}
}
