// Package server is Paddock's HTTP API: routing, authentication, the one
// place errors become HTTP statuses, metrics and the OpenAPI document. The
// work itself is done by internal/workspace; handlers only decode, call and
// encode.
package server

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/artifact"
	"github.com/paddock-ml/paddock/internal/audit"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/dispatch"
	"github.com/paddock-ml/paddock/internal/environments"
	"github.com/paddock-ml/paddock/internal/identities"
	"github.com/paddock-ml/paddock/internal/runs"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/targets"
	tokens "github.com/paddock-ml/paddock/internal/token"
	"github.com/paddock-ml/paddock/internal/users"
	"github.com/paddock-ml/paddock/internal/version"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed openapi.json
var openAPIDoc []byte

// Request body limits, by route (see access). A body over its route's
// limit is refused with 413 TooLarge: from its Content-Length before any
// of it is read, or as soon as a body without one goes over.
const (
	maxJSONBody     = 1 << 20  // properties, polls, metrics, users
	maxSubmitBody   = 4 << 20  // a run: up to 1 MiB of requirements and 4096 command arguments
	maxReportBody   = 16 << 20 // an agent's final report carries the outputs list (up to 100,000 files)
	maxSnapshotBody = 1 << 30  // a source snapshot; the artifact store applies the snapshot limit
	maxOutputsBody  = 2 << 30  // an attempt's outputs archive
	maxRunFileBody  = 1 << 30  // a file uploaded to a run; the artifact store bounds them together
)

// How long a client has to send a request body once its headers are in:
// JSON bodies are small, archives may be large and the link slow. Long
// polls and log follows are not limited: the limit ends when the body has
// been read.
const (
	jsonBodyTimeout   = 30 * time.Second
	uploadBodyTimeout = time.Hour
)

// Deps are what the API serves from.
type Deps struct {
	Targets *targets.Service
	// Users authenticates user tokens (default: a service on Store).
	Users *users.Service
	// Audit records mutating and refused calls (nil: none are recorded).
	Audit audit.Recorder
	Runs  *runs.Service
	// Environments registers named environments (default: a service on
	// Store and Targets).
	Environments *environments.Service
	Store        store.Store
	Dispatch     *dispatch.Dispatcher
	Artifacts    *artifact.Store
	// Nodes injects preemptions (the node controller).
	Nodes Preempter
	// Identities are the workspace's managed identities (default: a
	// service over Store and the targets' secret box).
	Identities *identities.Service
	Log        *slog.Logger
	// Clock times agents' long polls (default clock.Real).
	Clock clock.Clock
	// Servers, when set, lists the URLs of the workspace's replicas,
	// which agents are told with their work so they can fail over.
	Servers func() []string
}

// Preempter injects a preemption of a target's node (tests, demos).
type Preempter interface {
	Preempt(ctx context.Context, ws, name, nodeID string) error
}

// API serves the REST API.
type API struct {
	targets *targets.Service
	users   *users.Service
	audit   audit.Recorder
	auditState
	nodeAuth nodeAuth
	runs     *runs.Service
	envs     *environments.Service
	store    store.Store
	dispatch *dispatch.Dispatcher
	art      *artifact.Store
	nodes    Preempter
	log      *slog.Logger
	clock    clock.Clock
	servers  func() []string
	mux      *http.ServeMux
	routes   []route
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	pollTime prometheus.Histogram
	// bodyTimeout and uploadTimeout bound the time to send a request body
	// (jsonBodyTimeout and uploadBodyTimeout; tests shorten them).
	bodyTimeout, uploadTimeout time.Duration

	// identities are the workspace's managed identities.
	identities *identities.Service
}

// NewAPI builds the handler tree. Every route is registered here, so this
// list is the API (the OpenAPI test checks the document against it).
func NewAPI(d Deps) *API {
	if d.Identities == nil && d.Targets != nil {
		d.Identities = &identities.Service{Store: d.Store, Box: d.Targets.Box, Clock: d.Clock}
	}
	a := &API{targets: d.Targets, identities: d.Identities, users: d.Users, audit: d.Audit, runs: d.Runs, store: d.Store, dispatch: d.Dispatch, art: d.Artifacts, nodes: d.Nodes, log: d.Log,
		clock: clock.Or(d.Clock), servers: d.Servers, mux: http.NewServeMux(), registry: prometheus.NewRegistry(),
		bodyTimeout: jsonBodyTimeout, uploadTimeout: uploadBodyTimeout}
	if a.users == nil {
		a.users = &users.Service{Store: d.Store, Clock: d.Clock}
	}
	if a.envs = d.Environments; a.envs == nil {
		a.envs = &environments.Service{Store: d.Store, Computes: d.Targets, Clock: d.Clock}
	}
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "paddock_http_requests_total", Help: "HTTP requests by route, method and status code.",
	}, []string{"route", "method", "code"})
	a.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "paddock_http_request_duration_seconds", Help: "HTTP request handling time by route.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route", "method"})
	a.pollTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "paddock_agent_poll_handling_seconds",
		Help:    "Time to handle an agent's poll (its heartbeat), not counting the long-poll wait.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	})
	a.registry.MustRegister(a.requests, a.latency, a.pollTime, newComputeCollector(d.Store),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	a.mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPIDoc)
	})
	a.mux.HandleFunc("GET /api/v1/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.Version{Version: version.Version})
	})
	// Users.
	a.handle("GET /api/v1/workspaces/{ws}", byUsers, authz.ReadCompute, a.getWorkspace)
	a.handle("PATCH /api/v1/workspaces/{ws}", byUsers, authz.WriteWorkspace, a.updateWorkspace)
	a.handle("GET /api/v1/workspaces/{ws}/computes", byUsers, authz.ReadCompute, a.listComputes)
	a.handle("POST /api/v1/workspaces/{ws}/computes", byUsers, authz.WriteCompute, a.createCompute)
	a.handle("GET /api/v1/workspaces/{ws}/computes/{name}", byUsers, authz.ReadCompute, a.getCompute)
	a.handle("PATCH /api/v1/workspaces/{ws}/computes/{name}", byUsers, authz.WriteCompute, a.updateCompute)
	a.handle("DELETE /api/v1/workspaces/{ws}/computes/{name}", byUsers, authz.DeleteCompute, a.deleteCompute)
	a.handle("POST /api/v1/workspaces/{ws}/computes/{name}", byUsers, authz.OperateCompute, a.computeAction) // {name}:start|stop|restart
	a.handle("GET /api/v1/workspaces/{ws}/computes/{name}/nodes", byUsers, authz.ReadCompute, a.listNodes)
	a.handle("POST /api/v1/workspaces/{ws}/computes/{name}/nodes/{node}", byUsers, authz.PreemptNode, a.nodeAction) // {node}:preempt
	a.handle("GET /api/v1/workspaces/{ws}/sizes", byUsers, authz.ReadCompute, a.listSizes)
	a.handle("GET /api/v1/workspaces/{ws}/quotas", byUsers, authz.ReadCompute, a.listQuotas)
	a.handle("PUT /api/v1/workspaces/{ws}/quotas", byUsers, authz.WriteQuota, a.setQuota)
	a.handle("PUT /api/v1/workspaces/{ws}/snapshots", uploads, authz.SubmitRun, a.putSnapshot)
	a.handle("HEAD /api/v1/workspaces/{ws}/snapshots/{digest}", byUsers, authz.SubmitRun, a.headSnapshot)
	a.handle("GET /api/v1/workspaces/{ws}/runs", byUsers, authz.ReadRun, a.listRuns)
	a.handle("POST /api/v1/workspaces/{ws}/runs", submits, authz.SubmitRun, a.submitRun)
	a.handle("GET /api/v1/workspaces/{ws}/runs/{id}", byUsers, authz.ReadRun, a.getRun)
	a.handle("PATCH /api/v1/workspaces/{ws}/runs/{id}", usersOrRun, authz.WriteMetrics, a.updateRun) // tags
	a.handle("POST /api/v1/workspaces/{ws}/runs/{id}", usersOrRun, authz.CancelRun, a.runAction)     // {id}:cancel|complete|fail
	a.handle("GET /api/v1/workspaces/{ws}/runs/{id}/logs", byUsers, authz.ReadRun, a.runLogs)
	a.handle("GET /api/v1/workspaces/{ws}/runs/{id}/metrics", byUsers, authz.ReadRun, a.getMetrics)
	a.handle("POST /api/v1/workspaces/{ws}/runs/{id}/metrics", usersOrRun, authz.WriteMetrics, a.postMetrics)
	a.handle("GET /api/v1/workspaces/{ws}/runs/{id}/outputs", byUsers, authz.ReadRun, a.getOutputs)
	a.handle("GET /api/v1/workspaces/{ws}/runs/{id}/files", byUsers, authz.ReadRun, a.listRunFiles)
	a.handle("GET /api/v1/workspaces/{ws}/runs/{id}/files/{path...}", byUsers, authz.ReadRun, a.getRunFile)
	a.handle("PUT /api/v1/workspaces/{ws}/runs/{id}/files/{path...}", runUploads, authz.WriteMetrics, a.putRunFile)
	a.handle("GET /api/v1/workspaces/{ws}/environments", byUsers, authz.ReadRun, a.listEnvironments)
	a.handle("POST /api/v1/workspaces/{ws}/environments", byUsers, authz.SubmitRun, a.registerEnvironment)
	a.handle("GET /api/v1/workspaces/{ws}/environments/{name}", byUsers, authz.ReadRun, a.getEnvironment)
	a.handle("GET /api/v1/workspaces/{ws}/identities", byUsers, authz.ReadCompute, a.listIdentities)
	a.handle("POST /api/v1/workspaces/{ws}/identities", byUsers, authz.WriteIdentity, a.createIdentity)
	a.handle("GET /api/v1/workspaces/{ws}/identities/{name}", byUsers, authz.ReadCompute, a.getIdentity)
	a.handle("PATCH /api/v1/workspaces/{ws}/identities/{name}", byUsers, authz.WriteIdentity, a.updateIdentity)
	a.handle("DELETE /api/v1/workspaces/{ws}/identities/{name}", byUsers, authz.WriteIdentity, a.deleteIdentity)
	a.handle("GET /api/v1/workspaces/{ws}/users", byUsers, authz.ReadUsers, a.listUsers)
	a.handle("POST /api/v1/workspaces/{ws}/users", byUsers, authz.WriteUsers, a.addUser)
	a.handle("PATCH /api/v1/workspaces/{ws}/users/{name}", byUsers, authz.WriteUsers, a.setUserRole)
	a.handle("DELETE /api/v1/workspaces/{ws}/users/{name}", byUsers, authz.WriteUsers, a.removeUser)
	a.handle("GET /api/v1/workspaces/{ws}/audit", byUsers, authz.ReadAudit, a.listAudit)
	a.handle("GET /api/v1/workspaces/{ws}/audit/verify", byUsers, authz.ReadAudit, a.verifyAudit)
	// A user's own tokens: any user, no workspace role needed.
	a.handle("GET /api/v1/tokens", byUsers, anyUser, a.listTokens)
	a.handle("POST /api/v1/tokens", byUsers, anyUser, a.createToken)
	a.handle("DELETE /api/v1/tokens/{id}", byUsers, anyUser, a.revokeToken)
	a.handle("POST /api/v1/tokens/{id}", byUsers, anyUser, a.rotateToken) // current:rotate
	a.handle("POST /api/v1/studio/links", byUsers, anyUser, a.createStudioLink)
	// Node agents.
	a.handle("POST /api/v1/agent/hello", agents, agentsOnly, a.agentHello)
	a.handle("POST /api/v1/agent/poll", agents, agentsOnly, a.agentPoll)
	a.handle("GET /api/v1/agent/snapshots/{digest}", agents, agentsOnly, a.agentSnapshot)
	a.handle("GET /api/v1/agent/binary", agents, agentsOnly, a.agentBinary)
	a.handle("POST /api/v1/agent/runs/{id}/attempts/{n}/status", agentReports, agentsOnly, a.agentStatus)
	a.handle("POST /api/v1/agent/runs/{id}/attempts/{n}/logs", agentLogs, agentsOnly, a.agentLogs)
	a.handle("PUT /api/v1/agent/runs/{id}/attempts/{n}/outputs", agentUploads, agentsOnly, a.agentOutputs)
	a.handle("GET /api/v1/agent/runs/{id}/attempts/{n}/outputs", agents, agentsOnly, a.agentRestoreOutputs)
	a.handle("POST /api/v1/agent/runs/{id}/attempts/{n}/identity", agents, agentsOnly, a.agentIdentity)
	// Services that check an identity token a run gave them.
	a.handle("GET /api/v1/identity/token", identityTokens, identityTokensOnly, a.identityToken) // api.IdentityTokenPath
	a.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, api.NotFound("no API route %s %s; see /api/v1/openapi.json", r.Method, r.URL.Path))
	})
	return a
}

// ServeHTTP records metrics and serves.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.ContentLength != 0 {
		// A request with a body has bodyTimeout to send it (an upload route
		// extends this); reading it to the end lifts the deadline.
		http.NewResponseController(w).SetReadDeadline(start.Add(a.bodyTimeout))
	}
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	a.mux.ServeHTTP(rec, r)
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	} else if _, p, ok := strings.Cut(route, " "); ok {
		route = p
	}
	method := methodLabel(r.Method)
	a.requests.WithLabelValues(route, method, strconv.Itoa(rec.code)).Inc()
	a.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	a.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.code, "duration", time.Since(start))
}

// methodLabel is the method label of a request's metrics: the method for
// those HTTP defines, "other" for any other, so that clients cannot add
// series by inventing methods. Routes are labelled by their registered
// pattern, or "unmatched".
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "other"
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// caller is who makes a request: a user, a node's agent, a run (with its
// run token), or a service holding an identity token. Exactly one of
// User, Node, RunID and IdentityToken is set.
type caller struct {
	User *users.Identity
	// P is the user acting in the route's workspace, with their role
	// there (routes with {ws} only).
	P       authz.Principal
	Node    *store.Node
	RunID   string
	Attempt int
	// IdentityToken is checked by the one route that takes it.
	IdentityToken string
}

// name is the user name for records such as created_by.
func (c caller) name() string {
	if c.User != nil {
		return c.User.User.Name
	}
	return ""
}

// access says who may call a route, how large its body may be and whether
// it is an upload (with uploadTimeout to send it).
type access struct {
	users, agents, runs, identityTokens bool
	maxBody                             int64
	upload                              bool
}

var (
	byUsers      = access{users: true, maxBody: maxJSONBody}
	usersOrRun   = access{users: true, runs: true, maxBody: maxJSONBody}
	submits      = access{users: true, maxBody: maxSubmitBody}
	uploads      = access{users: true, maxBody: maxSnapshotBody, upload: true}
	runUploads   = access{users: true, runs: true, maxBody: maxRunFileBody, upload: true}
	agents       = access{agents: true, maxBody: maxJSONBody}
	agentReports = access{agents: true, maxBody: maxReportBody}
	agentLogs    = access{agents: true, maxBody: api.MaxLogBatchBytes}
	agentUploads = access{agents: true, maxBody: maxOutputsBody, upload: true}
	// identityTokens is the route that says what an identity token is.
	identityTokens = access{identityTokens: true, maxBody: maxJSONBody}
)

// limitBody applies a route's body limits once the caller is known and
// before the handler reads anything: a declared length over the limit is
// refused at once, and the body is cut off where it goes over.
func (a *API) limitBody(w http.ResponseWriter, r *http.Request, acc access) error {
	if r.ContentLength > acc.maxBody {
		return tooLarge(acc.maxBody)
	}
	if acc.upload && r.ContentLength != 0 {
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(a.uploadTimeout))
	}
	r.Body = http.MaxBytesReader(w, r.Body, acc.maxBody)
	return nil
}

// tooLarge is the error for a body over a route's limit.
func tooLarge(limit int64) error {
	return api.TooLarge("body", "the request body is larger than the %s this route takes", sizeText(limit))
}

// sizeText writes a limit in the largest whole binary unit.
func sizeText(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// handlerFunc is an authenticated handler that returns its error instead
// of writing it, so errors are mapped in one place.
type handlerFunc func(w http.ResponseWriter, r *http.Request, who caller) error

// Authorization of routes that are not about a workspace.
const (
	anyUser    authz.Action = "" // any user with a valid token (their own tokens)
	agentsOnly authz.Action = "" // node agents; users are refused by access
	// identityTokensOnly: services holding an identity token; users are
	// refused by access.
	identityTokensOnly authz.Action = ""
)

// route is a registered route, for the tests that walk them all.
type route struct {
	pattern string
	acc     access
	action  authz.Action
}

// handle registers an authenticated route. A user route of a workspace
// names the action it performs: the caller's role there must allow it
// (the one authorization table, internal/authz) before h runs.
func (a *API) handle(pattern string, acc access, action authz.Action, h handlerFunc) {
	if acc.users && strings.Contains(pattern, "{ws}") && action == "" {
		panic("server: workspace route without an authorization rule: " + pattern)
	}
	rt := route{pattern, acc, action}
	a.routes = append(a.routes, rt)
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		r, note := withNote(r)
		who, err := a.authenticate(r, acc)
		if err == nil && who.User != nil && r.PathValue("ws") != "" {
			if who.P, err = a.users.Principal(r.Context(), *who.User, r.PathValue("ws")); err == nil && action != "" {
				err = who.P.Allow(action)
			}
		}
		if err == nil {
			err = a.limitBody(w, r, acc)
		}
		if err == nil {
			err = h(w, r, who)
		}
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			err = tooLarge(mbe.Limit)
		}
		if err != nil {
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return // the client went away: nobody to answer, nothing went wrong here
			}
			if errors.Is(err, store.ErrNotLeader) {
				w.Header().Set(api.HeaderRetryElsewhere, "1") // not applied: another replica leads
			}
			e := api.AsError(err)
			if e.Code == api.CodeInternal || e.Code == api.CodeInsufficientStorage {
				a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, e)
		}
		status := http.StatusOK
		if sr, ok := w.(*statusRecorder); ok {
			status = sr.code
		}
		a.audited(r, rt, who, note, status, err)
	})
}

func unauthenticated(msg string) error {
	return &api.Error{Code: api.CodeUnauthenticated, Message: msg}
}

func (a *API) authenticate(r *http.Request, acc access) (caller, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return caller{}, unauthenticated("this API needs a bearer token (Authorization: Bearer <token>); `paddock up` writes the admin token to ~/.paddock/config")
	}
	switch {
	case strings.HasPrefix(token, tokens.NodePrefix):
		if !acc.agents {
			return caller{}, api.Forbidden("a node token can only be used by the node agent")
		}
		n, err := a.node(r.Context(), token)
		if err != nil {
			return caller{}, err
		}
		return caller{Node: &n}, nil
	case strings.HasPrefix(token, tokens.RunPrefix):
		if !acc.runs {
			return caller{}, api.Forbidden("a run token can only post metrics, tags and files for its own run and mark it failed")
		}
		runID, attempt, ok := a.dispatch.ParseRunToken(token)
		if !ok {
			return caller{}, unauthenticated("the run token is not valid for this server")
		}
		target, _, _ := strings.Cut(r.PathValue("id"), ":") // {id}:fail
		run, err := a.store.GetRun(r.Context(), r.PathValue("ws"), runID)
		if err != nil || run.ID != target {
			return caller{}, api.Forbidden("a run token can only be used for its own run")
		}
		if run.Status.Terminal() || run.Attempt != attempt {
			return caller{}, unauthenticated("the run token has expired: its run attempt is no longer active")
		}
		return caller{RunID: runID, Attempt: attempt}, nil
	case strings.HasPrefix(token, tokens.LinkPrefix), strings.HasPrefix(token, tokens.SessionPrefix):
		return caller{}, api.Forbidden("a studio sign-in link or session works only in the studio; the API takes user tokens (`paddock token create`)")
	case strings.HasPrefix(token, identities.TokenPrefix):
		if !acc.identityTokens {
			return caller{}, api.Forbidden("an identity token only proves an identity, at GET %s", api.IdentityTokenPath)
		}
		return caller{IdentityToken: token}, nil
	}
	if acc.identityTokens {
		return caller{}, unauthenticated("this route takes an identity token (pdi_…), as a run's identity endpoint gives it")
	}
	if !acc.users {
		return caller{}, api.Forbidden("this route is for node agents")
	}
	id, err := a.users.Authenticate(r.Context(), token)
	if err != nil {
		return caller{}, err
	}
	return caller{User: &id}, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *api.Error) {
	writeJSON(w, e.Code.HTTPStatus(), api.ErrorBody{Error: e})
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors that name the problem.
func decode(r *http.Request, v any) error { return decodeBody(r.Body, v) }

// decodeBody is decode for any reader.
func decodeBody(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return err // handle answers 413
		case errors.Is(err, io.EOF):
			return api.Invalid("body", "the request body must be a JSON object")
		case errors.Is(err, os.ErrDeadlineExceeded):
			return api.Invalid("body", "the request body was not sent within %s", jsonBodyTimeout)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return api.Invalid(f, "unknown field %q in the request body", f)
		}
		return api.Invalid("body", "the request body is not valid JSON: %v", err)
	}
	// Nothing but white space may follow the value: a second value or junk
	// after it is a client bug that would otherwise pass unseen.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return err
		}
		return api.Invalid("body", "the request body must be one JSON value with nothing after it")
	}
	return nil
}

func (a *API) listComputes(w http.ResponseWriter, r *http.Request, who caller) error {
	items, err := a.targets.ListComputes(r.Context(), r.PathValue("ws"), who.P)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ComputeList{Items: items})
	return nil
}

func (a *API) createCompute(w http.ResponseWriter, r *http.Request, who caller) error {
	var in api.ComputeCreate
	if err := decode(r, &in); err != nil {
		return err
	}
	noteTarget(r, "computes/"+in.Name)
	out, err := a.targets.CreateCompute(r.Context(), r.PathValue("ws"), who.name(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", r.URL.Path+"/"+out.Name)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) getCompute(w http.ResponseWriter, r *http.Request, who caller) error {
	out, err := a.targets.GetCompute(r.Context(), r.PathValue("ws"), who.P, r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) updateCompute(w http.ResponseWriter, r *http.Request, who caller) error {
	var in api.ComputeUpdate
	if err := decode(r, &in); err != nil {
		return err
	}
	out, err := a.targets.UpdateCompute(r.Context(), r.PathValue("ws"), who.P, r.PathValue("name"), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteCompute(w http.ResponseWriter, r *http.Request, who caller) error {
	out, err := a.targets.DeleteCompute(r.Context(), r.PathValue("ws"), who.P, r.PathValue("name"), r.URL.Query().Get("force") == "true")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, out)
	return nil
}

func (a *API) listSizes(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := a.checkWS(r); err != nil {
		return err
	}
	out := api.SizeList{Items: a.targets.Sizes.All()}
	if err := a.targets.Sizes.Err(); err != nil {
		out.Warning = err.Error() + "; the last good catalog is in use"
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// computeCollector reports how many targets exist by type and state; it
// reads the store on scrape, so it is never stale.
type computeCollector struct {
	st   store.Store
	desc *prometheus.Desc
}

func newComputeCollector(st store.Store) *computeCollector {
	return &computeCollector{st: st, desc: prometheus.NewDesc("paddock_compute_targets",
		"Compute targets by workspace, type and provisioning state.", []string{"workspace", "type", "state"}, nil)}
}

func (c *computeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *computeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	recs, err := c.st.ListComputesInStates(ctx, api.StateCreating, api.StateSucceeded, api.StateFailed,
		api.StateUpdating, api.StateDeleting, api.StateCanceled)
	if err != nil {
		return
	}
	type k struct{ ws, typ, state string }
	counts := map[k]int{}
	for _, r := range recs {
		counts[k{r.Workspace, r.Type, string(r.State)}]++
	}
	for key, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), key.ws, key.typ, key.state)
	}
}
