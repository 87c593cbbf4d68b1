package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A follower serves only reads the API has, none of which needs the
// dispatcher's loop; every write and every agent call goes to the leader.
func TestFollowerRoutes(t *testing.T) {
	s := newTestServer(t)
	registered := map[string]bool{}
	for _, rt := range s.api.routes {
		registered[rt.pattern] = true
	}
	for _, p := range []string{"GET /healthz", "GET /metrics", "GET /api/v1/version", "GET /api/v1/openapi.json"} {
		registered[p] = true
	}
	served := 0
	for _, rt := range s.api.routes {
		method, path, _ := strings.Cut(rt.pattern, " ")
		req := httptest.NewRequest(method, strings.NewReplacer("{ws}", "default", "{name}", "c", "{id}", "run-1", "{node}", "n", "{digest}", "d", "{n}", "1").Replace(path), nil)
		if !FollowerServes(req) {
			continue
		}
		served++
		if method != http.MethodGet {
			t.Errorf("a follower serves %s", rt.pattern)
		}
		if rt.acc.agents {
			t.Errorf("a follower serves the agents' %s: their calls need the leader's dispatcher", rt.pattern)
		}
	}
	for _, p := range []string{
		"GET /api/v1/workspaces/default/computes/c/nodes", // live node state is the dispatcher's
		"GET /api/v1/workspaces/default/quotas",           // use is counted from live nodes
		"POST /api/v1/workspaces/default/runs",
		"POST /api/v1/agent/poll",
	} {
		method, path, _ := strings.Cut(p, " ")
		if FollowerServes(httptest.NewRequest(method, path, nil)) {
			t.Errorf("a follower serves %s itself", p)
		}
	}
	if served < 10 {
		t.Fatalf("a follower serves only %d routes", served)
	}
}
