package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/paddock-ml/paddock/api"
)

// The identity endpoint serves a credential to the attempt whose token is
// sent, for one of its identities, and refuses everything else: no token,
// another attempt's token, a token after its attempt ended, an identity
// the run does not hold. The server's answer decides the rest.
func TestIdentityEndpoint(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var ended atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var in api.AgentIdentityRequest
		json.NewDecoder(r.Body).Decode(&in)
		switch {
		case r.URL.Path != "/api/v1/agent/runs/run-1/attempts/2/identity" || r.Header.Get("Authorization") != "Bearer pdn_x":
			w.WriteHeader(http.StatusTeapot)
		case ended.Load():
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(api.ErrorBody{Error: &api.Error{Code: api.CodeConflict, Message: "attempt 2 of run run-1 is no longer current"}})
		case in.Identity == "revoked":
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(api.ErrorBody{Error: &api.Error{Code: api.CodeForbidden, Message: "identity revoked is no longer assigned to compute target cpu"}})
		default:
			json.NewEncoder(w).Encode(api.IdentityCredential{Identity: in.Identity, Secrets: map[string]string{"TOKEN": "s3cret"}})
		}
	}))
	t.Cleanup(srv.Close)
	a := testAgent(srv.URL)
	ids, err := a.identityEndpoint()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ids.close)
	if again, _ := a.identityEndpoint(); again != ids {
		t.Fatal("a second attempt started a second endpoint")
	}
	one := newAttempt(a, api.Assignment{RunID: "run-1", Attempt: 2, Identities: []string{"blob-reader"}})
	two := newAttempt(a, api.Assignment{RunID: "run-1", Attempt: 2, Identities: []string{"blob-reader", "revoked"}})
	url, tok1, release1 := ids.register(one)
	_, tok2, release2 := ids.register(two)
	defer release2()
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, identityPath) || tok1 == tok2 || len(tok1) < 40 {
		t.Fatalf("endpoint %q, tokens %q %q", url, tok1, tok2)
	}
	get := func(token, query string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url+query, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(tok1, ""); code != http.StatusOK || !strings.Contains(body, `"TOKEN":"s3cret"`) || !strings.Contains(body, `"identity":"blob-reader"`) {
		t.Fatalf("the only identity: %d %s", code, body)
	}
	before := calls.Load()
	for _, tc := range []struct {
		desc, token, query string
		code               int
	}{
		{"no token", "", "", http.StatusUnauthorized},
		{"a wrong token", tok1 + "x", "", http.StatusUnauthorized},
		{"an identity the run does not hold", tok1, "?identity=revoked", http.StatusNotFound},
		{"several identities and none chosen", tok2, "", http.StatusBadRequest},
	} {
		if code, body := get(tc.token, tc.query); code != tc.code || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d", tc.desc, code, body, tc.code)
		}
	}
	if calls.Load() != before {
		t.Error("the agent asked the server for a request it should have refused itself")
	}
	if code, body := get(tok2, "?identity=REVOKED"); code != http.StatusForbidden || !strings.Contains(body, "no longer assigned") {
		t.Errorf("an identity the server refuses: %d %s", code, body)
	}
	ended.Store(true)
	if code, _ := get(tok2, "?identity=blob-reader"); code != http.StatusUnauthorized {
		t.Errorf("after the server says the attempt ended: %d, want 401", code)
	}
	release1()
	if code, _ := get(tok1, ""); code != http.StatusUnauthorized {
		t.Errorf("after the attempt released its token: %d, want 401", code)
	}
	req, _ := http.NewRequest(http.MethodPost, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok2)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
