package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/audit"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/store"
)

// recorder keeps audit entries in memory.
type recorder struct {
	mu      sync.Mutex
	entries []store.AuditEntry
}

func (r *recorder) Record(_ context.Context, e store.AuditEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, e)
	return nil
}

func (r *recorder) take() []store.AuditEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	es := r.entries
	r.entries = nil
	return es
}

// Every route that changes something is audited, or says why not.
func TestEveryMutationIsAudited(t *testing.T) {
	s := newTestServer(t)
	for _, rt := range s.api.routes {
		method, _, _ := strings.Cut(rt.pattern, " ")
		if !rt.acc.users || method == http.MethodGet || method == http.MethodHead {
			continue
		}
		_, named := auditNames[rt.pattern]
		_, excused := notAudited[rt.pattern]
		if named == excused {
			t.Errorf("%s: in auditNames %v, in notAudited %v; want exactly one", rt.pattern, named, excused)
		}
	}
}

// What an entry holds: who, what, on what, from where, the outcome —
// for a call done, one refused by role, one with a bad token and one that
// failed; reads are not recorded, except a token's first use (sign-in;
// a refused call records the refusal, with the user, instead).
func TestAuditEntries(t *testing.T) {
	f := newMatrixFixture(t)
	rec := &recorder{}
	f.s.api.audit = rec
	owner, reader := f.tokens[authz.Owner], f.tokens[authz.Reader]
	call := func(method, path, token string, body any) int {
		var req *http.Request
		if body != nil {
			req = request(method, path, token, jsonBody(body))
		} else {
			req = request(method, path, token, nil)
		}
		req.RemoteAddr = "10.1.2.3:5555"
		return f.s.serve(req).Code
	}
	call(http.MethodGet, "/api/v1/workspaces/default/computes", owner, nil)
	call(http.MethodGet, "/api/v1/workspaces/default/computes", owner, nil)
	call(http.MethodDelete, "/api/v1/workspaces/default/computes/contributor-cpu", owner, nil)
	call(http.MethodDelete, "/api/v1/workspaces/default/computes/admin-cpu", reader, nil)
	call(http.MethodGet, "/api/v1/workspaces/default/computes", "pdk_nonsense", nil)
	call(http.MethodPost, "/api/v1/workspaces/default/computes", owner, api.ComputeCreate{Name: "bad name!", Type: "cluster"})
	call(http.MethodPost, "/api/v1/workspaces/default/computes/admin-box:stop", owner, nil)
	got := rec.take()
	want := []store.AuditEntry{
		{Action: "auth.signin", User: "owner", Outcome: audit.OK, Status: 200},
		{Action: "compute.delete", User: "owner", Target: "computes/contributor-cpu", Outcome: audit.OK, Status: 202},
		{Action: "compute.delete", User: "reader", Target: "computes/admin-cpu", Outcome: audit.Denied, Status: 403},
		{Action: "auth.signin", User: "", Target: "computes", Outcome: audit.Denied, Status: 401},
		{Action: "compute.create", User: "owner", Target: "computes/bad name!", Outcome: audit.Failed, Status: 400},
		{Action: "compute.stop", User: "owner", Target: "computes/admin-box", Outcome: audit.OK, Status: 202},
	}
	if len(got) != len(want) {
		for _, e := range got {
			t.Logf("%+v", e)
		}
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Action != w.Action || g.User != w.User || g.Outcome != w.Outcome || g.Status != w.Status ||
			(w.Target != "" && g.Target != w.Target) || g.Source != "10.1.2.3" || g.Workspace != "default" {
			t.Errorf("entry %d = %+v\nwant %+v", i, g, w)
		}
		if w.Outcome != audit.OK && g.Message == "" {
			t.Errorf("entry %d: no message for %s", i, w.Outcome)
		}
	}
}
