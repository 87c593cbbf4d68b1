package server

import "net/http"

// followerRoutes are the routes a follower replica serves itself: reads
// that need nothing but the store (a run's log and status watches wake on
// the store's change notifications). Everything else goes to the leader,
// which holds the dispatcher: writes, agents' calls, and the reads of
// live dispatcher state (a target's nodes, quotas in use).
var followerRoutes = func() *http.ServeMux {
	m := http.NewServeMux()
	nop := func(http.ResponseWriter, *http.Request) {}
	for _, p := range []string{
		"GET /healthz",
		"GET /metrics",
		"GET /api/v1/version",
		"GET /api/v1/openapi.json",
		"GET /api/v1/workspaces/{ws}",
		"GET /api/v1/workspaces/{ws}/computes",
		"GET /api/v1/workspaces/{ws}/computes/{name}",
		"GET /api/v1/workspaces/{ws}/sizes",
		"GET /api/v1/workspaces/{ws}/runs",
		"GET /api/v1/workspaces/{ws}/runs/{id}",
		"GET /api/v1/workspaces/{ws}/runs/{id}/logs",
		"GET /api/v1/workspaces/{ws}/runs/{id}/metrics",
		"GET /api/v1/workspaces/{ws}/runs/{id}/outputs",
		"GET /api/v1/workspaces/{ws}/identities",
		"GET /api/v1/workspaces/{ws}/identities/{name}",
		"GET /api/v1/workspaces/{ws}/users",
		"GET /api/v1/workspaces/{ws}/audit",
		"GET /api/v1/workspaces/{ws}/audit/verify",
		"GET /api/v1/tokens",
	} {
		m.HandleFunc(p, nop)
	}
	return m
}()

// FollowerServes reports whether a follower replica answers r itself
// rather than forwarding it to the leader (see internal/replica).
func FollowerServes(r *http.Request) bool {
	_, pattern := followerRoutes.Handler(r)
	return pattern != ""
}
