package server

import (
	"bytes"
	"net/http"
	"testing"
)

// A node token fetches the snapshots of the runs placed on its node, and
// no other: not one of a run on another node, not one no run uses.
func TestNodeFetchesOnlyItsRunsSnapshots(t *testing.T) {
	s := newTestServer(t)
	put := func(content string) string {
		ref, err := s.art.PutSnapshot(bytes.NewReader([]byte(content)))
		if err != nil {
			t.Fatal(err)
		}
		return ref.Digest
	}
	mine, theirs, unused := put("source of run a"), put("source of run b"), put("source of no run")
	nodeA := s.addNode("node-a")
	s.placedRun("node-a", mine)
	nodeB := s.addNode("node-b")
	s.placedRun("node-b", theirs)

	get := func(token, digest string) *http.Response {
		return s.serve(request("GET", "/api/v1/agent/snapshots/"+digest, token, nil)).Result()
	}
	if resp := get(nodeA, mine); resp.StatusCode != http.StatusOK {
		t.Fatalf("node a fetching its run's snapshot: %d", resp.StatusCode)
	}
	if resp := get(nodeB, theirs); resp.StatusCode != http.StatusOK {
		t.Fatalf("node b fetching its run's snapshot: %d", resp.StatusCode)
	}
	for _, tc := range []struct{ who, token, digest string }{
		{"node a, node b's run's snapshot", nodeA, theirs},
		{"node b, node a's run's snapshot", nodeB, mine},
		{"node a, a snapshot no run uses", nodeA, unused},
	} {
		rec := s.serve(request("GET", "/api/v1/agent/snapshots/"+tc.digest, tc.token, nil))
		errorOf(t, rec, http.StatusNotFound)
	}
}
