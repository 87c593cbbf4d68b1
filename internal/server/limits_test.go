package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/identities"
)

// countingBody is a request body of a given size that counts what the
// server reads of it: prefix, then x's.
type countingBody struct {
	prefix string
	size   int64
	read   int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.read >= b.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), b.size-b.read))
	for i := range n {
		if j := b.read + int64(i); j < int64(len(b.prefix)) {
			p[i] = b.prefix[j]
		} else {
			p[i] = 'x'
		}
	}
	b.read += int64(n)
	return n, nil
}

// logPrefix starts a log batch whose one line's text never ends.
const logPrefix = `{"lines":[{"n":1,"stream":"stdout","t":0,"text":"`

// The hostile test's finding: an 80 MB log post was decoded (up to 2 GiB)
// before the run was even checked. Now it is refused with 413 and the
// standard error body before a byte of it is read; one without a length
// is cut off at the route's limit; and the caller, the run and the attempt
// are checked before the body is touched.
func TestAgentLogPostOverTheLimitIsRefusedUnread(t *testing.T) {
	s := newTestServer(t)
	node := s.addNode("node-a")
	other := s.addNode("node-b")
	run := s.placedRun("node-a", "")
	logs := fmt.Sprintf("/api/v1/agent/runs/%s/attempts/%d/logs", run.ID, run.Attempt)

	t.Run("80 MB with its length", func(t *testing.T) {
		body := &countingBody{prefix: logPrefix, size: 80 << 20}
		req := request("POST", logs, node, body)
		req.ContentLength = body.size
		e := errorOf(t, s.serve(req), http.StatusRequestEntityTooLarge)
		if e.Code != api.CodeTooLarge || e.Field != "body" || !strings.Contains(e.Message, "4 MiB") {
			t.Errorf("error = %+v, want TooLarge on body naming the 4 MiB limit", e)
		}
		if body.read != 0 {
			t.Errorf("the server read %d bytes of a body it refused by its length", body.read)
		}
	})
	t.Run("80 MB without a length", func(t *testing.T) {
		body := &countingBody{prefix: logPrefix, size: 80 << 20}
		req := request("POST", logs, node, body)
		req.ContentLength = -1
		errorOf(t, s.serve(req), http.StatusRequestEntityTooLarge)
		if body.read > api.MaxLogBatchBytes+1 {
			t.Errorf("the server read %d bytes, more than the %d-byte limit", body.read, api.MaxLogBatchBytes)
		}
	})
	// A small body is not read either when the caller may not post it.
	for _, tc := range []struct {
		name, path, token string
		status            int
	}{
		{"no token", logs, "", http.StatusUnauthorized},
		{"a user token", logs, s.token, http.StatusForbidden},
		{"another node", logs, other, http.StatusConflict},
		{"an old attempt", fmt.Sprintf("/api/v1/agent/runs/%s/attempts/%d/logs", run.ID, run.Attempt+1), node, http.StatusConflict},
		{"no such run", "/api/v1/agent/runs/run-nosuchrun/attempts/1/logs", node, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &countingBody{prefix: logPrefix, size: 1 << 10}
			req := request("POST", tc.path, tc.token, body)
			req.ContentLength = body.size
			errorOf(t, s.serve(req), tc.status)
			if body.read != 0 {
				t.Errorf("the server read %d bytes of a request it refused", body.read)
			}
		})
	}
	t.Run("a batch within the limit", func(t *testing.T) {
		lines := []api.AgentLogLine{{N: 1, Stream: "stdout", Text: strings.Repeat("y", api.MaxLogLineBytes)}, {N: 2, Stream: "stderr", Text: "done"}}
		rec := s.serve(request("POST", logs, node, jsonBody(api.AgentLogs{Lines: lines})))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ack":2`) {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}

// Every route has a body limit; a declared length over it is refused
// unread, whatever the route.
func TestEveryRouteRefusesABodyOverItsLimitUnread(t *testing.T) {
	s := newTestServer(t)
	node := s.addNode("node-a")
	for route, acc := range routeAccess(t) {
		method, path, _ := strings.Cut(route, " ")
		token := s.token
		if acc.agents {
			token = node
		}
		if acc.identityTokens {
			token = identities.TokenPrefix + "checked-by-the-handler"
		}
		path = strings.NewReplacer("{ws}", "default", "{id}", "run-x", "{n}", "1", "{name}", "local",
			"{node}", "node-a", "{digest}", strings.Repeat("ab", 32)).Replace(path)
		body := &countingBody{size: acc.maxBody + 1}
		req := request(method, path, token, body)
		req.ContentLength = body.size
		e := errorOf(t, s.serve(req), http.StatusRequestEntityTooLarge)
		if body.read != 0 || e.Field != "body" {
			t.Errorf("%s: read %d bytes; error %+v", route, body.read, e)
		}
	}
}

// A source snapshot over the snapshot limit is refused by its length, before
// it is read, naming the limit.
func TestSnapshotOverTheLimitIsRefusedUnread(t *testing.T) {
	s := newTestServer(t)
	body := &countingBody{size: s.art.SnapshotLimit + 1}
	req := request("PUT", "/api/v1/workspaces/default/snapshots", s.token, body)
	req.ContentLength = body.size
	e := errorOf(t, s.serve(req), http.StatusRequestEntityTooLarge)
	if e.Field != "source" || !strings.Contains(e.Message, "100 MiB") || body.read != 0 {
		t.Errorf("error %+v after reading %d bytes; want TooLarge on source, nothing read", e, body.read)
	}
}
