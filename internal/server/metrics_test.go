package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// series counts the sample lines of a /metrics scrape, and those of the
// HTTP request metrics.
func (s *testServer) series() (all, ofHTTP int) {
	s.t.Helper()
	rec := s.serve(request("GET", "/metrics", "", nil))
	if rec.Code != http.StatusOK {
		s.t.Fatalf("GET /metrics: %d", rec.Code)
	}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		all++
		if strings.HasPrefix(line, "paddock_http_") {
			ofHTTP++
		}
	}
	return all, ofHTTP
}

// The hostile test's finding: each invented HTTP method added series to
// /metrics, unauthenticated. 3,000 requests with odd methods, to routes,
// to API paths that match none and to paths outside the API, now leave
// /metrics with the same series.
func TestOddMethodsAddNoMetricSeries(t *testing.T) {
	s := newTestServer(t)
	paths := []string{"/api/v1/workspaces/default/computes", "/api/v1/nothing-here", "/elsewhere", "/healthz"}
	send := func(i int) {
		rec := s.serve(request(fmt.Sprintf("FROB%d", i), paths[i%len(paths)], "", nil))
		if rec.Code < 400 {
			t.Fatalf("method FROB%d: %d", i, rec.Code)
		}
	}
	s.series() // the scrape's own series
	for i := range len(paths) {
		send(i)
	}
	allBefore, httpBefore := s.series()
	for i := range 3000 {
		send(i)
	}
	allAfter, httpAfter := s.series()
	if allAfter != allBefore || httpAfter != httpBefore {
		t.Errorf("3,000 odd-method requests took /metrics from %d series (%d HTTP) to %d (%d HTTP)", allBefore, httpBefore, allAfter, httpAfter)
	}
	rec := s.serve(request("GET", "/metrics", "", nil))
	if strings.Contains(rec.Body.String(), "FROB") || !strings.Contains(rec.Body.String(), `method="other"`) {
		t.Errorf("odd methods are not all labelled other")
	}
}
