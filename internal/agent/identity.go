package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// identityServer is the endpoint runs get their managed identities'
// credentials from (PADDOCK_IDENTITY_ENDPOINT): one loopback HTTP listener
// per agent, started when the first attempt holding identities starts.
// Each such attempt gets a random token of its own (PADDOCK_IDENTITY_TOKEN,
// in its environment only); a request with it gets a fresh credential of
// one of that attempt's identities, which the agent asks the server for
// with its node token. When the attempt ends its token is forgotten, and
// the server refuses the attempt too. Secrets pass through and are never
// kept or logged.
type identityServer struct {
	a   *Agent
	ln  net.Listener
	srv *http.Server

	mu       sync.Mutex
	attempts map[[32]byte]*attempt // by the SHA-256 of their token
}

// identityPath is the endpoint's path; the URL runs get is
// http://127.0.0.1:PORT/identity.
const identityPath = "/identity"

// identityEndpoint returns the agent's identity endpoint, starting it on
// first use.
func (a *Agent) identityEndpoint() (*identityServer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ids != nil {
		return a.ids, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("serving the identity endpoint on loopback: %w", err)
	}
	s := &identityServer{a: a, ln: ln, attempts: map[[32]byte]*attempt{}}
	mux := http.NewServeMux()
	mux.HandleFunc(identityPath, s.serve)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: time.Minute}
	go s.srv.Serve(ln)
	a.ids = s
	a.log.Info("serving runs' identity endpoint", "addr", ln.Addr().String())
	return s, nil
}

// close stops the endpoint.
func (s *identityServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

// register gives an attempt a token and returns the endpoint's URL, the
// token and a function that forgets the token (when the attempt ends).
func (s *identityServer) register(at *attempt) (url, token string, release func()) {
	b := make([]byte, 32)
	rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	key := sha256.Sum256([]byte(token))
	s.mu.Lock()
	s.attempts[key] = at
	s.mu.Unlock()
	return "http://" + s.ln.Addr().String() + identityPath, token, func() {
		s.mu.Lock()
		delete(s.attempts, key)
		s.mu.Unlock()
	}
}

// identityError is the endpoint's error answer, in the API's shape.
func identityError(w http.ResponseWriter, status int, code api.Code, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: &api.Error{Code: code, Message: fmt.Sprintf(format, args...)}})
}

// serve answers GET /identity[?identity=NAME] with a credential of one of
// the calling attempt's identities (the only one when it has one).
func (s *identityServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		identityError(w, http.StatusMethodNotAllowed, api.CodeInvalid, "the identity endpoint answers GET only")
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	at := s.attempts[sha256.Sum256([]byte(strings.TrimSpace(token)))]
	s.mu.Unlock()
	if !ok || at == nil {
		identityError(w, http.StatusUnauthorized, api.CodeUnauthenticated,
			"send the run's PADDOCK_IDENTITY_TOKEN as the bearer token; a token is good only while its run attempt runs")
		return
	}
	held := at.as.Identities
	asked := r.URL.Query().Get("identity")
	name := heldName(held, asked)
	switch {
	case asked == "" && len(held) == 1:
		name = held[0]
	case asked == "":
		identityError(w, http.StatusBadRequest, api.CodeInvalid, "this run holds several identities (%s); choose one with ?identity=NAME", strings.Join(held, ", "))
		return
	case name == "":
		identityError(w, http.StatusNotFound, api.CodeNotFound, "this run holds no identity %q (it holds %s)", asked, strings.Join(held, ", "))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	cred, err := s.a.client.Load().IdentityCredential(ctx, at.ref, name)
	var ae *api.Error
	switch {
	case err == nil:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(cred)
	case errors.Is(err, api.ErrConflict), errors.Is(err, api.ErrNotFound):
		identityError(w, http.StatusUnauthorized, api.CodeUnauthenticated, "this run attempt has ended; its identities can no longer be used")
	case errors.As(err, &ae) && ae.Code == api.CodeForbidden:
		identityError(w, http.StatusForbidden, api.CodeForbidden, "%s", ae.Message)
	default:
		s.a.log.Debug("getting an identity credential failed", "run", at.ref.RunID, "identity", name, "err", err)
		s.a.refreshServer()
		identityError(w, http.StatusServiceUnavailable, api.CodeUnavailable, "the Paddock server cannot be reached now; try again shortly")
	}
}

// heldName is the name of the identity in held that s names (names
// compare case-insensitively), or "".
func heldName(held []string, s string) string {
	for _, x := range held {
		if s != "" && strings.EqualFold(x, s) {
			return x
		}
	}
	return ""
}
