package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Each call of AgentClient goes to its route as the server declares it
// (internal/server/server.go), with the node token, and a refusal comes
// back as the error the agent acts on.
func TestAgentClientCallsTheAgentRoutes(t *testing.T) {
	t.Parallel()
	ref := AttemptRef{RunID: "run-abc", Attempt: 2}
	stale := func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(ErrorBody{Error: Conflict("attempt 2 of run run-abc is no longer current")})
	}
	mux := http.NewServeMux()
	var seen []string
	route := func(pattern string, h func(w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if got := r.Header.Get("Authorization"); got != "Bearer pdn_x" {
				t.Errorf("%s: Authorization %q", pattern, got)
			}
			if r.PathValue("id") != "" && (r.PathValue("id") != ref.RunID || r.PathValue("n") != "2") {
				t.Errorf("%s: run %s attempt %s", pattern, r.PathValue("id"), r.PathValue("n"))
			}
			seen = append(seen, pattern)
			h(w, r)
		})
	}
	route("POST /api/v1/agent/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"node_id":"n1","compute":"local"}`))
	})
	route("POST /api/v1/agent/poll", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"stale":[{"run_id":"run-abc","attempt":1}]}`))
	})
	route("GET /api/v1/agent/snapshots/{digest}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("digest") != "d1" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(ErrorBody{Error: NotFound("snapshot %s is not the source of a run on this node", r.PathValue("digest"))})
			return
		}
		w.Write([]byte("snapshot"))
	})
	route("POST /api/v1/agent/runs/{id}/attempts/{n}/status", func(w http.ResponseWriter, r *http.Request) { stale(w) })
	route("POST /api/v1/agent/runs/{id}/attempts/{n}/logs", func(w http.ResponseWriter, r *http.Request) {
		var in AgentLogs
		json.NewDecoder(r.Body).Decode(&in)
		json.NewEncoder(w).Encode(LogAckBody{Ack: in.Lines[len(in.Lines)-1].N})
	})
	route("PUT /api/v1/agent/runs/{id}/attempts/{n}/outputs", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/gzip" {
			t.Errorf("outputs sent as %q", ct)
		}
		body, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode([]OutputFile{{Path: "model.txt", Size: int64(len(body))}})
	})
	route("GET /api/v1/agent/runs/{id}/attempts/{n}/outputs", func(w http.ResponseWriter, r *http.Request) { stale(w) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := context.Background()
	c := NewAgentClient(srv.URL, "pdn_x")
	if node, err := c.Hello(ctx, AgentHello{Hostname: "h"}); err != nil || node.NodeID != "n1" {
		t.Errorf("Hello = %+v, %v", node, err)
	}
	if work, err := c.Poll(ctx, AgentPoll{WaitMS: 1}); err != nil || len(work.Stale) != 1 {
		t.Errorf("Poll = %+v, %v", work, err)
	}
	if err := c.Report(ctx, ref, AttemptReport{Status: RunRunning}); !errors.Is(err, ErrConflict) {
		t.Errorf("Report of a stale attempt: %v, want a conflict", err)
	}
	if ack, err := c.Logs(ctx, ref, []AgentLogLine{{N: 1, Stream: "stdout"}, {N: 2, Stream: "stdout"}}); err != nil || ack != 2 {
		t.Errorf("Logs = %d, %v", ack, err)
	}
	if files, err := c.PutOutputs(ctx, ref, strings.NewReader("tar")); err != nil || len(files) != 1 || files[0].Size != 3 {
		t.Errorf("PutOutputs = %+v, %v", files, err)
	}
	if _, err := c.GetOutputs(ctx, ref); !errors.Is(err, ErrConflict) {
		t.Errorf("GetOutputs of a stale attempt: %v, want a conflict", err)
	}
	body, err := c.GetSnapshot(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(body)
	body.Close()
	if string(data) != "snapshot" {
		t.Errorf("GetSnapshot read %q", data)
	}
	if _, err := c.GetSnapshot(ctx, "d2"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not the source of a run") {
		t.Errorf("GetSnapshot of another node's snapshot: %v, want the server's not found", err)
	}
	if len(seen) != 8 {
		t.Errorf("routes called: %v", seen)
	}
}
