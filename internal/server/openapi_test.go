package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/identities"
	"github.com/paddock-ml/paddock/internal/kube"
	"github.com/paddock-ml/paddock/internal/nodes"
	"github.com/paddock-ml/paddock/internal/store"
	tokens "github.com/paddock-ml/paddock/internal/token"
)

// documentedRoutes mirrors the routes NewAPI registers. A route added to
// server.go must be added here and to openapi.json.
var documentedRoutes = []struct{ method, path string }{
	{"GET", "/healthz"},
	{"GET", "/metrics"},
	{"GET", "/api/v1/openapi.json"},
	{"GET", "/api/v1/version"},
	{"GET", "/api/v1/workspaces/{ws}"},
	{"PATCH", "/api/v1/workspaces/{ws}"},
	{"GET", "/api/v1/workspaces/{ws}/computes"},
	{"POST", "/api/v1/workspaces/{ws}/computes"},
	{"GET", "/api/v1/workspaces/{ws}/computes/{name}"},
	{"PATCH", "/api/v1/workspaces/{ws}/computes/{name}"},
	{"DELETE", "/api/v1/workspaces/{ws}/computes/{name}"},
	{"POST", "/api/v1/workspaces/{ws}/computes/{name}"}, // {name} is "<name>:start", ":stop" or ":restart"
	{"GET", "/api/v1/workspaces/{ws}/computes/{name}/nodes"},
	{"POST", "/api/v1/workspaces/{ws}/computes/{name}/nodes/{node}"}, // {node} is "<node id>:preempt"
	{"GET", "/api/v1/workspaces/{ws}/sizes"},
	{"GET", "/api/v1/workspaces/{ws}/quotas"},
	{"PUT", "/api/v1/workspaces/{ws}/quotas"},
	{"PUT", "/api/v1/workspaces/{ws}/snapshots"},
	{"HEAD", "/api/v1/workspaces/{ws}/snapshots/{digest}"},
	{"GET", "/api/v1/workspaces/{ws}/runs"},
	{"POST", "/api/v1/workspaces/{ws}/runs"},
	{"GET", "/api/v1/workspaces/{ws}/runs/{id}"},
	{"PATCH", "/api/v1/workspaces/{ws}/runs/{id}"},
	{"POST", "/api/v1/workspaces/{ws}/runs/{id}"}, // {id} is "<run id>:cancel", ":complete" or ":fail"
	{"GET", "/api/v1/workspaces/{ws}/runs/{id}/logs"},
	{"GET", "/api/v1/workspaces/{ws}/runs/{id}/metrics"},
	{"POST", "/api/v1/workspaces/{ws}/runs/{id}/metrics"},
	{"GET", "/api/v1/workspaces/{ws}/runs/{id}/outputs"},
	{"GET", "/api/v1/workspaces/{ws}/runs/{id}/files"},
	{"GET", "/api/v1/workspaces/{ws}/runs/{id}/files/{path...}"}, // documented as {path}
	{"PUT", "/api/v1/workspaces/{ws}/runs/{id}/files/{path...}"},
	{"GET", "/api/v1/workspaces/{ws}/environments"},
	{"POST", "/api/v1/workspaces/{ws}/environments"},
	{"GET", "/api/v1/workspaces/{ws}/environments/{name}"},
	{"GET", "/api/v1/workspaces/{ws}/identities"},
	{"POST", "/api/v1/workspaces/{ws}/identities"},
	{"GET", "/api/v1/workspaces/{ws}/identities/{name}"},
	{"PATCH", "/api/v1/workspaces/{ws}/identities/{name}"},
	{"DELETE", "/api/v1/workspaces/{ws}/identities/{name}"},
	{"GET", "/api/v1/workspaces/{ws}/users"},
	{"POST", "/api/v1/workspaces/{ws}/users"},
	{"PATCH", "/api/v1/workspaces/{ws}/users/{name}"},
	{"DELETE", "/api/v1/workspaces/{ws}/users/{name}"},
	{"GET", "/api/v1/workspaces/{ws}/audit"},
	{"GET", "/api/v1/workspaces/{ws}/audit/verify"},
	{"GET", "/api/v1/tokens"},
	{"POST", "/api/v1/tokens"},
	{"DELETE", "/api/v1/tokens/{id}"},
	{"POST", "/api/v1/tokens/{id}"}, // {id} is "current:rotate"
	{"POST", "/api/v1/studio/links"},
	{"POST", "/api/v1/agent/hello"},
	{"POST", "/api/v1/agent/poll"},
	{"GET", "/api/v1/agent/snapshots/{digest}"},
	{"GET", "/api/v1/agent/binary"},
	{"POST", "/api/v1/agent/runs/{id}/attempts/{n}/status"},
	{"POST", "/api/v1/agent/runs/{id}/attempts/{n}/logs"},
	{"PUT", "/api/v1/agent/runs/{id}/attempts/{n}/outputs"},
	{"GET", "/api/v1/agent/runs/{id}/attempts/{n}/outputs"},
	{"POST", "/api/v1/agent/runs/{id}/attempts/{n}/identity"},
	{"GET", "/api/v1/identity/token"},
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	return doc
}

// obj returns m[keys[0]][keys[1]]... as an object, failing if absent.
func obj(t *testing.T, m map[string]any, keys ...string) map[string]any {
	t.Helper()
	cur := m
	for _, k := range keys {
		next, ok := cur[k].(map[string]any)
		if !ok {
			t.Fatalf("openapi.json: %s is not an object", strings.Join(keys, "."))
		}
		cur = next
	}
	return cur
}

// routeKey names a route by method and documented path: a pattern's
// wildcard {x...} (the rest of the path) is {x} in the document.
func routeKey(method, path string) string { return method + " " + docPath(path) }

// docPath is a mux pattern's path as the document writes it.
func docPath(path string) string { return strings.ReplaceAll(path, "...}", "}") }

func TestOpenAPIHeader(t *testing.T) {
	doc := loadDoc(t)
	if doc["openapi"] != "3.0.3" {
		t.Errorf("openapi = %v, want 3.0.3", doc["openapi"])
	}
	info := obj(t, doc, "info")
	if info["title"] != "Paddock API" || info["version"] != "v1" {
		t.Errorf("info = %v/%v, want Paddock API/v1", info["title"], info["version"])
	}
	// One scheme per kind of token; all are sent as Authorization: Bearer.
	for _, name := range []string{userScheme, runScheme, nodeScheme, identityScheme} {
		s := obj(t, doc, "components", "securitySchemes", name)
		if s["type"] != "http" || s["scheme"] != "bearer" {
			t.Errorf("%s = %v, want an HTTP bearer scheme", name, s)
		}
	}
	prefixes := map[string]string{userScheme: "pdk_", runScheme: tokens.RunPrefix, nodeScheme: tokens.NodePrefix, identityScheme: identities.TokenPrefix}
	for name, prefix := range prefixes {
		if f, _ := obj(t, doc, "components", "securitySchemes", name)["bearerFormat"].(string); !strings.HasPrefix(f, prefix) {
			t.Errorf("%s.bearerFormat = %q, want the %s token prefix", name, f, prefix)
		}
	}
}

// The security schemes, one per kind of token.
const (
	userScheme = "bearerAuth" // a user's API token (pdk_)
	runScheme  = "runToken"   // a run's own token (pdr_), PADDOCK_RUN_TOKEN
	nodeScheme = "nodeToken"  // a node agent's token (pdn_)
	// identityScheme is an identity token (pdi_) a run got with a credential.
	identityScheme = "identityToken"
)

// accessLevels names the access values server.go registers routes with.
var accessLevels = map[string]access{
	"byUsers": byUsers, "usersOrRun": usersOrRun, "submits": submits, "uploads": uploads, "runUploads": runUploads,
	"agents": agents, "agentReports": agentReports, "agentLogs": agentLogs, "agentUploads": agentUploads,
	"identityTokens": identityTokens,
}

// wantSecurity is the security requirement an operation with access acc
// must declare: one alternative per kind of token it accepts.
func wantSecurity(acc access) string {
	var alts []string
	for _, s := range []struct {
		ok     bool
		scheme string
	}{{acc.users, userScheme}, {acc.runs, runScheme}, {acc.agents, nodeScheme}, {acc.identityTokens, identityScheme}} {
		if s.ok {
			alts = append(alts, `{"`+s.scheme+`":[]}`)
		}
	}
	return "[" + strings.Join(alts, ",") + "]"
}

// registeredRoutes scans server.go for the method-qualified patterns NewAPI
// registers, so a route added there without documentation fails a test.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("server.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`a\.(?:handle|mux\.HandleFunc|mux\.Handle)\(\s*"([A-Z]+) (/[^"]*)"`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		out = append(out, routeKey(m[1], m[2]))
	}
	sort.Strings(out)
	return out
}

// routeAccess scans server.go for the routes registered with a.handle and
// the access level each gets; the other routes need no token.
func routeAccess(t *testing.T) map[string]access {
	t.Helper()
	src, err := os.ReadFile("server.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`a\.handle\(\s*"([A-Z]+) (/[^"]*)",\s*(\w+),`)
	out := map[string]access{}
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		acc, ok := accessLevels[m[3]]
		if !ok {
			t.Fatalf("%s %s is registered with access %q, unknown to accessLevels", m[1], m[2], m[3])
		}
		out[routeKey(m[1], m[2])] = acc
	}
	if len(out) == 0 {
		t.Fatal("found no a.handle registrations in server.go; has the registration syntax changed?")
	}
	return out
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadDoc(t)
	paths := obj(t, doc, "paths")

	var table []string
	for _, r := range documentedRoutes {
		table = append(table, routeKey(r.method, r.path))
	}
	sort.Strings(table)
	scanned := registeredRoutes(t)
	if len(scanned) < len(table) {
		t.Fatalf("found %d routes in server.go, fewer than the %d in documentedRoutes; has the registration syntax changed?", len(scanned), len(table))
	}
	if !slices.Equal(scanned, table) {
		t.Errorf("routes in server.go differ from documentedRoutes:\n server.go: %q\n table:     %q", scanned, table)
	}

	want := map[string]bool{}
	for _, k := range append(scanned, table...) {
		want[k] = true
	}
	for k := range want {
		method, path, _ := strings.Cut(k, " ")
		item, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("%s: path not documented in openapi.json", k)
			continue
		}
		if _, ok := item[strings.ToLower(method)].(map[string]any); !ok {
			t.Errorf("%s: method not documented in openapi.json", k)
		}
	}

	// No invented endpoints: everything documented is registered.
	for path, v := range paths {
		item, _ := v.(map[string]any)
		for _, m := range httpMethods {
			if _, ok := item[m]; ok && !want[routeKey(strings.ToUpper(m), path)] {
				t.Errorf("%s %s is documented but not registered in NewAPI", strings.ToUpper(m), path)
			}
		}
	}
}

// TestOpenAPIPathsRouteInMux checks each documented operation against the
// real mux: a request for it must land on the pattern of the same name.
func TestOpenAPIPathsRouteInMux(t *testing.T) {
	a := NewAPI(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	fill := strings.NewReplacer("{ws}", "default", "{name}", "gpu-cluster", "{id}", "run-k5qw3xhz2m4ea",
		"{n}", "1", "{digest}", strings.Repeat("ab", 32), "{node}", "gpu-cluster-mfrggzd", "{path...}", "outputs/images/loss.png")
	for _, r := range documentedRoutes {
		path := fill.Replace(r.path)
		switch {
		case r.method == "POST" && r.path == "/api/v1/workspaces/{ws}/runs/{id}":
			path += ":cancel"
		case r.method == "POST" && r.path == "/api/v1/workspaces/{ws}/computes/{name}/nodes/{node}":
			path += ":preempt"
		case r.method == "POST" && r.path == "/api/v1/workspaces/{ws}/computes/{name}":
			path += ":start"
		}
		req := httptest.NewRequest(r.method, path, nil)
		if _, pattern := a.mux.Handler(req); pattern != r.method+" "+r.path {
			t.Errorf("%s %s routes to pattern %q", r.method, r.path, pattern)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	a := NewAPI(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/openapi.json: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec.Body.String() != string(openAPIDoc) {
		t.Error("served document differs from the embedded openapi.json")
	}
}

func TestOpenAPIOperations(t *testing.T) {
	doc := loadDoc(t)
	paths := obj(t, doc, "paths")
	accessOf := routeAccess(t)
	params := regexp.MustCompile(`\{([^}]+)\}`)
	ids := map[string]string{}
	for path, v := range paths {
		item := v.(map[string]any)
		for _, m := range httpMethods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			where := strings.ToUpper(m) + " " + path
			if id, _ := op["operationId"].(string); id == "" {
				t.Errorf("%s: no operationId", where)
			} else if prev, dup := ids[id]; dup {
				t.Errorf("%s: operationId %q also used by %s", where, id, prev)
			} else {
				ids[id] = where
			}

			// Workspace routes take user tokens (metrics POST also a run
			// token), user routes user tokens only, agent routes node
			// tokens, and the others none; the declared security follows
			// the access server.go gives the route.
			acc, authed := accessOf[where]
			ws := strings.HasPrefix(path, "/api/v1/workspaces/")
			user := path == "/api/v1/tokens" || strings.HasPrefix(path, "/api/v1/tokens/") || strings.HasPrefix(path, "/api/v1/studio/")
			agent := strings.HasPrefix(path, "/api/v1/agent/")
			idToken := path == api.IdentityTokenPath
			switch {
			case (ws || user || agent || idToken) != authed:
				t.Errorf("%s: registered with access = %v, want %v", where, authed, ws || user || agent || idToken)
			case idToken && (!acc.identityTokens || acc.users || acc.runs || acc.agents):
				t.Errorf("%s: the identity token route must take identity tokens only", where)
			case ws && (!acc.users || acc.agents):
				t.Errorf("%s: a workspace route must take user tokens and not node tokens", where)
			case user && (!acc.users || acc.runs || acc.agents):
				t.Errorf("%s: a user route must take user tokens only", where)
			case agent && (!acc.agents || acc.users || acc.runs):
				t.Errorf("%s: an agent route must take node tokens only", where)
			}
			_, secured := op["security"]
			if secured != authed {
				t.Errorf("%s: security present = %v, want %v", where, secured, authed)
			} else if authed {
				b, _ := json.Marshal(op["security"])
				if want := wantSecurity(acc); string(b) != want {
					t.Errorf("%s: security = %s, want %s", where, b, want)
				}
				resp := op["responses"].(map[string]any)
				codes := []string{"401", "403", "500"}
				if ws {
					codes = append(codes, "404") // the workspace may not exist
				}
				if _, body := op["requestBody"]; body {
					codes = append(codes, "413") // every route bounds its body
				}
				for _, code := range codes {
					if _, ok := resp[code]; !ok {
						t.Errorf("%s: response %s not documented", where, code)
					}
				}
			}

			// Every {param} in the path is declared as a path parameter.
			declared := map[string]bool{}
			for _, list := range []any{item["parameters"], op["parameters"]} {
				ps, _ := list.([]any)
				for _, p := range ps {
					pm := resolve(t, doc, p.(map[string]any))
					if pm["in"] == "path" && pm["required"] == true {
						declared[pm["name"].(string)] = true
					}
				}
			}
			for _, m := range params.FindAllStringSubmatch(path, -1) {
				if !declared[m[1]] {
					t.Errorf("%s: path parameter %q not declared", where, m[1])
				}
			}
		}
	}

	// The status codes each handler actually returns.
	wantCodes := map[string][]string{
		"POST /api/v1/workspaces/{ws}/computes":                     {"201", "400", "409", "503"},
		"PATCH /api/v1/workspaces/{ws}/computes/{name}":             {"200", "400", "409"},
		"DELETE /api/v1/workspaces/{ws}/computes/{name}":            {"202", "400", "409"},
		"POST /api/v1/workspaces/{ws}/computes/{name}":              {"202", "400", "403", "404", "409"},
		"GET /api/v1/workspaces/{ws}/computes/{name}":               {"200"},
		"GET /api/v1/workspaces/{ws}/computes/{name}/nodes":         {"200"},
		"POST /api/v1/workspaces/{ws}/computes/{name}/nodes/{node}": {"202", "400", "403", "404"},
		"GET /api/v1/workspaces/{ws}/computes":                      {"200"},
		"GET /api/v1/workspaces/{ws}/sizes":                         {"200"},
		"GET /api/v1/workspaces/{ws}/quotas":                        {"200"},
		"PUT /api/v1/workspaces/{ws}/quotas":                        {"200", "400", "403"},
		"PUT /api/v1/workspaces/{ws}/snapshots":                     {"201", "400", "413", "507"},
		"HEAD /api/v1/workspaces/{ws}/snapshots/{digest}":           {"200", "404"},
		"GET /api/v1/workspaces/{ws}/runs":                          {"200"},
		"POST /api/v1/workspaces/{ws}/runs":                         {"201", "400", "403", "409", "503"},
		"GET /api/v1/workspaces/{ws}/runs/{id}":                     {"200"},
		"POST /api/v1/workspaces/{ws}/runs/{id}":                    {"202", "400", "403", "404", "409"},
		"PATCH /api/v1/workspaces/{ws}/runs/{id}":                   {"200", "400", "403", "404"},
		"GET /api/v1/workspaces/{ws}/runs/{id}/files":               {"200", "404"},
		"GET /api/v1/workspaces/{ws}/runs/{id}/files/{path}":        {"200", "400", "404"},
		"PUT /api/v1/workspaces/{ws}/runs/{id}/files/{path}":        {"201", "400", "403", "404", "409", "413", "507"},
		"GET /api/v1/workspaces/{ws}/environments":                  {"200"},
		"POST /api/v1/workspaces/{ws}/environments":                 {"200", "201", "400"},
		"GET /api/v1/workspaces/{ws}/environments/{name}":           {"200", "400", "404"},
		"GET /api/v1/workspaces/{ws}/runs/{id}/logs":                {"200", "404"},
		"GET /api/v1/workspaces/{ws}/runs/{id}/metrics":             {"200", "404"},
		"POST /api/v1/workspaces/{ws}/runs/{id}/metrics":            {"201", "400", "401", "403", "404"},
		"GET /api/v1/workspaces/{ws}/runs/{id}/outputs":             {"200", "404", "409"},
		"POST /api/v1/workspaces/{ws}/users":                        {"201", "400", "403", "409"},
		"GET /api/v1/workspaces/{ws}/users":                         {"200", "403"},
		"PATCH /api/v1/workspaces/{ws}/users/{name}":                {"200", "400", "403", "404"},
		"DELETE /api/v1/workspaces/{ws}/users/{name}":               {"204", "400", "403", "404"},
		"GET /api/v1/workspaces/{ws}/audit":                         {"200", "400", "403"},
		"GET /api/v1/workspaces/{ws}/audit/verify":                  {"200", "403"},
		"GET /api/v1/tokens":                                        {"200", "403"},
		"POST /api/v1/tokens":                                       {"201", "400", "409"},
		"DELETE /api/v1/tokens/{id}":                                {"200", "404"},
		"POST /api/v1/tokens/{id}":                                  {"200", "404"},
		"POST /api/v1/studio/links":                                 {"201", "403"},
		"POST /api/v1/agent/hello":                                  {"200", "400", "404"},
		"POST /api/v1/agent/poll":                                   {"200", "400", "404", "409"},
		"GET /api/v1/agent/snapshots/{digest}":                      {"200", "400", "404"},
		"GET /api/v1/agent/binary":                                  {"200", "401"},
		"POST /api/v1/agent/runs/{id}/attempts/{n}/status":          {"204", "400", "409"},
		"POST /api/v1/agent/runs/{id}/attempts/{n}/logs":            {"200", "400", "404", "409", "413"},
		"PUT /api/v1/agent/runs/{id}/attempts/{n}/outputs":          {"200", "400", "404", "409", "413", "507"},
		"GET /api/v1/agent/runs/{id}/attempts/{n}/outputs":          {"200", "400", "404", "409"},
		"GET /api/v1/workspaces/{ws}":                               {"200"},
		"PATCH /api/v1/workspaces/{ws}":                             {"200", "400", "403"},
		"GET /api/v1/workspaces/{ws}/identities":                    {"200"},
		"POST /api/v1/workspaces/{ws}/identities":                   {"201", "400", "409"},
		"GET /api/v1/workspaces/{ws}/identities/{name}":             {"200"},
		"PATCH /api/v1/workspaces/{ws}/identities/{name}":           {"200", "400", "403", "409"},
		"DELETE /api/v1/workspaces/{ws}/identities/{name}":          {"204", "403", "409"},
		"POST /api/v1/agent/runs/{id}/attempts/{n}/identity":        {"200", "400", "403", "404", "409"},
		"GET /api/v1/identity/token":                                {"200", "401"},
		"GET /api/v1/version":                                       {"200"},
		"GET /api/v1/openapi.json":                                  {"200"},
		"GET /healthz":                                              {"200"},
		"GET /metrics":                                              {"200"},
	}
	for k, codes := range wantCodes {
		method, path, _ := strings.Cut(k, " ")
		resp := obj(t, paths, path, strings.ToLower(method), "responses")
		for _, c := range codes {
			if _, ok := resp[c]; !ok {
				t.Errorf("%s: response %s not documented", k, c)
			}
		}
	}
	if len(wantCodes) != len(documentedRoutes) {
		t.Errorf("wantCodes lists %d routes, documentedRoutes %d: give every route its status codes", len(wantCodes), len(documentedRoutes))
	}
	for _, p := range []string{"/api/v1/workspaces/{ws}/computes", "/api/v1/workspaces/{ws}/runs", "/api/v1/workspaces/{ws}/identities"} {
		created := obj(t, paths, p, "post", "responses", "201")
		if _, ok := obj(t, created, "headers")["Location"]; !ok {
			t.Errorf("POST %s 201: no Location header", p)
		}
	}

	// Parameters the handlers read.
	wantParams := map[string][]string{
		"GET /api/v1/workspaces/{ws}/runs":                {"query compute", "query limit"},
		"POST /api/v1/workspaces/{ws}/runs":               {"header Idempotency-Key"},
		"GET /api/v1/workspaces/{ws}/runs/{id}":           {"query watch", "query timeout_ms"},
		"GET /api/v1/workspaces/{ws}/runs/{id}/logs":      {"query after", "query follow"},
		"DELETE /api/v1/workspaces/{ws}/computes/{name}":  {"query force"},
		"GET /api/v1/workspaces/{ws}/environments/{name}": {"query version"},
	}
	for k, want := range wantParams {
		method, path, _ := strings.Cut(k, " ")
		have := map[string]bool{}
		for _, list := range []any{obj(t, paths, path)["parameters"], obj(t, paths, path, strings.ToLower(method))["parameters"]} {
			ps, _ := list.([]any)
			for _, p := range ps {
				pm := resolve(t, doc, p.(map[string]any))
				have[pm["in"].(string)+" "+pm["name"].(string)] = true
			}
		}
		for _, w := range want {
			if !have[w] {
				t.Errorf("%s: %s parameter not documented", k, w)
			}
		}
	}

	// POST .../runs/{id} serves only {id}:cancel, POST .../nodes/{node}
	// only {node}:preempt, POST .../computes/{name} only {name}:start,
	// :stop and :restart. Every declaration of the parameter, at path or
	// operation level, must have a pattern that accepts exactly those.
	actionRoutes := map[string]bool{}
	for _, a := range []struct {
		path, param, id string
		actions         []string
	}{
		{"/api/v1/workspaces/{ws}/runs/{id}", "id", "run-k5qw3xhz2m4ea", []string{":cancel", ":complete", ":fail"}},
		{"/api/v1/workspaces/{ws}/computes/{name}/nodes/{node}", "node", "gpu-cluster-mfrggzd", []string{":preempt"}},
		{"/api/v1/workspaces/{ws}/computes/{name}", "name", "my-instance", []string{":start", ":stop", ":restart"}},
	} {
		actionRoutes["POST "+a.path] = true
		op := obj(t, paths, a.path, "post")
		for _, action := range a.actions {
			if d, _ := op["description"].(string); !strings.Contains(d, action) {
				t.Errorf("POST %s: description %q does not say {%s} may be <id>%s", a.path, d, a.param, action)
			}
		}
		found := false
		for _, list := range []any{obj(t, paths, a.path)["parameters"], op["parameters"]} {
			ps, _ := list.([]any)
			for _, p := range ps {
				pm := resolve(t, doc, p.(map[string]any))
				if pm["name"] != a.param {
					continue
				}
				found = true
				pat, _ := obj(t, pm, "schema")["pattern"].(string)
				re, err := regexp.Compile(pat)
				ok := err == nil && !re.MatchString(a.id) && !re.MatchString(a.id+":bogus") && !re.MatchString(a.id+a.actions[0]+"x")
				for _, action := range a.actions {
					ok = ok && re.MatchString(a.id+action)
				}
				if !ok {
					t.Errorf("POST %s: {%s} pattern %q must accept <id>%s only", a.path, a.param, pat, strings.Join(a.actions, ", <id>"))
				}
			}
		}
		if !found {
			t.Errorf("POST %s: no {%s} parameter", a.path, a.param)
		}
	}
	// A workspace POST that ends in a path parameter is an action route
	// ({x} is "<...>:action"): each must be checked above.
	for _, r := range documentedRoutes {
		if r.method == "POST" && strings.HasPrefix(r.path, "/api/v1/workspaces/") && strings.HasSuffix(r.path, "}") && !actionRoutes[routeKey(r.method, r.path)] {
			t.Errorf("POST %s ends in a path parameter, so it is an action route; add it to the action-parameter checks", r.path)
		}
	}
}

// resolve follows a $ref within the document.
func resolve(t *testing.T, doc, m map[string]any) map[string]any {
	t.Helper()
	r, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	target, err := lookupRef(doc, r)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

type refError string

func (e refError) Error() string { return string(e) }

// lookupRef resolves a local JSON pointer such as #/components/schemas/X.
func lookupRef(doc map[string]any, ref string) (map[string]any, error) {
	ptr, ok := strings.CutPrefix(ref, "#/components/")
	if !ok {
		return nil, refError("$ref " + ref + " does not point into #/components/")
	}
	cur := doc["components"]
	for _, tok := range strings.Split(ptr, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, refError("$ref " + ref + " does not resolve")
		}
		if cur, ok = m[tok]; !ok {
			return nil, refError("$ref " + ref + " does not resolve")
		}
	}
	out, ok := cur.(map[string]any)
	if !ok {
		return nil, refError("$ref " + ref + " does not resolve to an object")
	}
	return out, nil
}

func TestOpenAPIRefsResolve(t *testing.T) {
	doc := loadDoc(t)
	used := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				used[r] = true
				if _, err := lookupRef(doc, r); err != nil {
					t.Error(err)
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	if len(used) == 0 {
		t.Fatal("no $ref found in openapi.json")
	}
	// Every reusable component is used somewhere.
	for _, section := range []string{"schemas", "parameters", "responses", "headers"} {
		for name := range obj(t, doc, "components", section) {
			if r := "#/components/" + section + "/" + name; !used[r] {
				t.Errorf("%s is never referenced", r)
			}
		}
	}
	// Every security scheme is required by some operation.
	schemes := map[string]bool{}
	for _, v := range obj(t, doc, "paths") {
		for _, m := range httpMethods {
			op, _ := v.(map[string]any)[m].(map[string]any)
			reqs, _ := op["security"].([]any)
			for _, req := range reqs {
				for name := range req.(map[string]any) {
					schemes[name] = true
					if _, ok := obj(t, doc, "components", "securitySchemes")[name]; !ok {
						t.Errorf("security scheme %q is used but not defined", name)
					}
				}
			}
		}
	}
	for name := range obj(t, doc, "components", "securitySchemes") {
		if !schemes[name] {
			t.Errorf("security scheme %q is never used", name)
		}
	}
}

// jsonField is one field of a wire type as encoding/json sees it.
type jsonField struct {
	name      string
	omitempty bool
	typ       reflect.Type
}

// wireFields lists a struct's JSON fields, embedded structs flattened.
func wireFields(typ reflect.Type) []jsonField {
	var out []jsonField
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, wireFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name: name, omitempty: slices.Contains(strings.Split(opts, ","), "omitempty"), typ: f.Type})
	}
	return out
}

// jsonFields lists the JSON names of a struct's fields, embedded structs
// flattened.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for _, f := range wireFields(typ) {
		out = append(out, f.name)
	}
	return out
}

func schemaProps(t *testing.T, doc map[string]any, name string) []string {
	t.Helper()
	var out []string
	for k := range obj(t, doc, "components", "schemas", name, "properties") {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func kind(t *testing.T, typ string) compute.Kind {
	t.Helper()
	k, ok := compute.Lookup(typ)
	if !ok {
		t.Fatalf("compute kind %q not registered", typ)
	}
	return k
}

// wireType is the Go type behind a schema.
type wireType struct {
	typ reflect.Type
	// extra are properties the Go type lacks (write-only secrets).
	extra []string
	// out marks types the server writes: every field without omitempty is
	// always present, so exactly those are required. For the others (read,
	// or both read and written) required only has to be a subset of them.
	out bool
}

func wireIn[T any]() wireType  { return wireType{typ: reflect.TypeFor[T]()} }
func wireOut[T any]() wireType { return wireType{typ: reflect.TypeFor[T](), out: true} }

// openAPIType is the OpenAPI type a Go value encodes as, or "" when it has
// no fixed one (json.RawMessage).
func openAPIType(typ reflect.Type) string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case typ == reflect.TypeFor[json.RawMessage]():
		return ""
	case typ == reflect.TypeFor[time.Time]():
		return "string"
	}
	switch typ.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return ""
}

// schemaType is a property schema's type, following a $ref or a single
// allOf; "" when it has none (oneOf, anyOf).
func schemaType(t *testing.T, doc, s map[string]any) string {
	t.Helper()
	if all, ok := s["allOf"].([]any); ok && len(all) == 1 {
		s = all[0].(map[string]any)
	}
	typ, _ := resolve(t, doc, s)["type"].(string)
	return typ
}

// schemaRef is the $ref of a property schema, directly or through a single
// allOf.
func schemaRef(p map[string]any) string {
	if all, ok := p["allOf"].([]any); ok && len(all) == 1 {
		p, _ = all[0].(map[string]any)
	}
	r, _ := p["$ref"].(string)
	return r
}

func stringList(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestOpenAPISchemasMatchGoTypes keeps the schemas in step with the wire
// types: property names with the json tags, property types with the Go
// types, required with omitempty, and the kinds' secret and updatable
// fields.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := loadDoc(t)
	cluster, instance, remote, slurm, k8s := kind(t, "cluster"), kind(t, "instance"), kind(t, "remote"), kind(t, "slurm"), kind(t, "kubernetes")
	withSecrets := func(w wireType, secrets []string) wireType { w.extra = secrets; return w }
	types := map[string]wireType{
		// Compute targets.
		"Compute":              wireOut[api.Compute](),
		"ComputeCreate":        wireIn[api.ComputeCreate](),
		"ComputeUpdate":        wireIn[api.ComputeUpdate](),
		"ComputeList":          wireOut[api.ComputeList](),
		"ProvisioningError":    wireOut[api.ProvisioningError](),
		"Size":                 wireOut[api.Size](),
		"SizeList":             wireOut[api.SizeList](),
		"Node":                 wireOut[api.Node](),
		"NodeList":             wireOut[api.NodeList](),
		"Quota":                wireOut[api.Quota](),
		"QuotaList":            wireOut[api.QuotaList](),
		"QuotaSet":             wireIn[api.QuotaSet](),
		"Version":              wireOut[api.Version](),
		"ErrorBody":            wireOut[api.ErrorBody](),
		"Error":                wireOut[api.Error](),
		"ClusterProperties":    withSecrets(wireIn[compute.ClusterProperties](), cluster.SecretFields()),
		"InstanceProperties":   withSecrets(wireIn[compute.InstanceProperties](), instance.SecretFields()),
		"RemoteProperties":     withSecrets(wireIn[compute.RemoteProperties](), remote.SecretFields()),
		"SlurmProperties":      withSecrets(wireIn[compute.SlurmProperties](), slurm.SecretFields()),
		"KubernetesProperties": withSecrets(wireIn[compute.KubernetesProperties](), k8s.SecretFields()),
		"SparkProperties":      withSecrets(wireIn[compute.SparkProperties](), kind(t, "spark").SecretFields()),
		"DatabricksProperties": withSecrets(wireIn[compute.DatabricksProperties](), kind(t, "databricks").SecretFields()),
		"InstanceType":         wireIn[compute.InstanceType](),
		"ClusterStatus":        wireOut[compute.ClusterStatus](),
		"InstanceStatus":       wireOut[compute.InstanceStatus](),
		"RemoteStatus":         wireOut[compute.RemoteStatus](),
		"LocalStatus":          wireOut[compute.LocalStatus](),
		"SlurmStatus":          wireOut[compute.SlurmStatus](),
		"SlurmPartition":       wireOut[compute.SlurmPartition](),
		"KubernetesStatus":     wireOut[compute.KubernetesStatus](),
		"SparkStatus":          wireOut[compute.SparkStatus](),
		"DatabricksStatus":     wireOut[compute.DatabricksStatus](),
		"KubernetesNode":       wireOut[kube.Node](),
		// Runs.
		"Run":          wireOut[api.Run](),
		"RunSubmit":    wireIn[api.RunSubmit](),
		"SparkOptions": wireIn[api.SparkOptions](),
		"ComputeSpec":  wireIn[api.ComputeSpec](),
		"RunList":      wireOut[api.RunList](),
		"Attempt":      wireOut[api.Attempt](),
		"Environment":  wireOut[api.Environment](), // no field is required either way
		"Resources":    wireIn[api.Resources](),    // also read: a submission may leave fields out
		"Metric":       wireOut[api.Metric](),
		"MetricPost":   wireIn[api.MetricPost](),
		"MetricItem":   wireIn[api.MetricItem](),
		"MetricList":   wireOut[api.MetricList](),
		"OutputFile":   wireOut[api.OutputFile](),
		"RunUpdate":    wireIn[api.RunUpdate](),
		"RunEnd":       wireIn[api.RunEnd](),
		"RunFile":      wireOut[api.RunFile](),
		"RunFileList":  wireOut[api.RunFileList](),
		// Environments.
		"NamedEnvironment":    wireOut[api.NamedEnvironment](),
		"EnvironmentRegister": wireIn[api.EnvironmentRegister](),
		"EnvironmentList":     wireOut[api.EnvironmentList](),
		"LogLine":             wireOut[api.LogLine](),
		"SnapshotRef":         wireOut[api.SnapshotRef](),
		// The node agent's protocol.
		"AgentHello":    wireIn[api.AgentHello](),
		"GPUInfo":       wireIn[api.GPUInfo](),
		"AgentNode":     wireOut[api.AgentNode](),
		"AttemptRef":    wireOut[api.AttemptRef](),
		"AgentPoll":     wireIn[api.AgentPoll](),
		"AgentWork":     wireOut[api.AgentWork](),
		"Assignment":    wireOut[api.Assignment](),
		"CancelOrder":   wireOut[api.CancelOrder](),
		"AttemptReport": wireIn[api.AttemptReport](),
		"AgentLogs":     wireIn[api.AgentLogs](),
		"AgentLogLine":  wireIn[api.AgentLogLine](),
		"LogAckBody":    wireOut[api.LogAckBody](),
		// The workspace and its identities.
		"ComputeIdentity":      wireOut[api.ComputeIdentity](),
		"ComputeUserIdentity":  wireOut[api.ComputeUserIdentity](),
		"ComputeLimits":        wireOut[api.ComputeLimits](),
		"Workspace":            wireOut[api.Workspace](),
		"Policy":               wireOut[api.Policy](),
		"PolicyUpdate":         wireIn[api.PolicyUpdate](),
		"Identity":             wireOut[api.Identity](),
		"IdentityList":         wireOut[api.IdentityList](),
		"IdentityCreate":       wireIn[api.IdentityCreate](),
		"IdentityUpdate":       wireIn[api.IdentityUpdate](),
		"IdentityCredential":   wireOut[api.IdentityCredential](),
		"IdentityTokenInfo":    wireOut[api.IdentityTokenInfo](),
		"AgentIdentityRequest": wireIn[api.AgentIdentityRequest](),
		// Users.
		"User":        wireOut[api.User](),
		"UserCreate":  wireIn[api.UserCreate](),
		"UserList":    wireOut[api.UserList](),
		"UserUpdate":  wireIn[api.UserUpdate](),
		"TokenCreate": wireIn[api.TokenCreate](),
		"Token":       wireOut[api.Token](),
		"StudioLink":  wireOut[api.StudioLink](),
		"TokenList":   wireOut[api.TokenList](),
		"AuditEntry":  wireOut[api.AuditEntry](),
		"AuditList":   wireOut[api.AuditList](),
		"AuditVerify": wireOut[api.AuditVerify](),
	}
	// Schemas without a Go struct of their own: the updatable fields.
	updates := map[string][]string{}
	for typ, cs := range computeSchemas {
		if cs.update != "" {
			updates[cs.update] = kind(t, typ).UpdatableFields()
		}
	}

	schemas := obj(t, doc, "components", "schemas")
	for name, s := range schemas {
		_, hasProps := s.(map[string]any)["properties"]
		_, isType := types[name]
		_, isUpdate := updates[name]
		if hasProps && !isType && !isUpdate {
			t.Errorf("schema %s has properties but no Go type to check them against; add it to TestOpenAPISchemasMatchGoTypes", name)
		}
	}
	for name, want := range updates {
		if got := schemaProps(t, doc, name); !slices.Equal(got, sorted(want)) {
			t.Errorf("schema %s has properties %q, the kind's updatable fields are %q", name, got, sorted(want))
		}
	}
	for name, w := range types {
		fields := wireFields(w.typ)
		want := append(jsonFields(w.typ), w.extra...)
		if got := schemaProps(t, doc, name); !slices.Equal(got, sorted(want)) {
			t.Errorf("schema %s has properties %q, Go type %s has %q", name, got, w.typ, sorted(want))
		}
		schema := obj(t, doc, "components", "schemas", name)
		if schema["type"] != "object" {
			t.Errorf("schema %s: type %v, want object", name, schema["type"])
		}
		// Property types.
		props := obj(t, schema, "properties")
		for _, f := range fields {
			p, ok := props[f.name].(map[string]any)
			if !ok {
				continue // reported above
			}
			if got, want := schemaType(t, doc, p), openAPIType(f.typ); got != "" && want != "" && got != want {
				t.Errorf("%s.%s has type %s, Go field (%s) encodes as %s", name, f.name, got, f.typ, want)
			}
		}
		// Required properties.
		var required, always []string
		if r, ok := schema["required"]; ok {
			required = sorted(stringList(r))
		}
		for _, f := range fields {
			if !f.omitempty {
				always = append(always, f.name)
			}
		}
		always = sorted(always)
		if w.out {
			if !slices.Equal(required, always) {
				t.Errorf("schema %s requires %q, but the server always writes %q (the fields without omitempty)", name, required, always)
			}
		} else {
			for _, r := range required {
				if !slices.Contains(always, r) {
					t.Errorf("schema %s requires %q, but the Go field is omitempty", name, r)
				}
			}
		}
	}

	checkComputeSchemas(t, doc)

	enum := func(path ...string) []string {
		var out []string
		for _, v := range obj(t, doc, path...)["enum"].([]any) {
			out = append(out, v.(string))
		}
		return sorted(out)
	}
	// POST .../computes both creates and attaches.
	creatable := sorted(append(compute.Types(compute.Created), compute.Types(compute.Attached)...))
	if got := enum("components", "schemas", "ComputeCreate", "properties", "type"); !slices.Equal(got, creatable) {
		t.Errorf("ComputeCreate.type enum = %q, created and attached types are %q", got, creatable)
	}
	all := append(append(compute.Types(compute.Created), compute.Types(compute.Attached)...), compute.Types(compute.BuiltIn)...)
	if got := enum("components", "schemas", "Compute", "properties", "type"); !slices.Equal(got, sorted(all)) {
		t.Errorf("Compute.type enum = %q, registered types are %q", got, sorted(all))
	}
	states := []api.ProvisioningState{api.StateCreating, api.StateSucceeded, api.StateFailed,
		api.StateUpdating, api.StateDeleting, api.StateCanceled}
	var wantStates []string
	for _, s := range states {
		wantStates = append(wantStates, string(s))
	}
	if got := enum("components", "schemas", "ProvisioningState"); !slices.Equal(got, sorted(wantStates)) {
		t.Errorf("ProvisioningState enum = %q, want %q", got, sorted(wantStates))
	}
	var wantCodes []string
	for _, c := range api.Codes {
		wantCodes = append(wantCodes, string(c))
	}
	if got := enum("components", "schemas", "ErrorCode"); !slices.Equal(got, sorted(wantCodes)) {
		t.Errorf("ErrorCode enum = %q, want %q", got, sorted(wantCodes))
	}
	runStatuses := []api.RunStatus{api.RunQueued, api.RunProvisioning, api.RunStarting, api.RunPreparing,
		api.RunRunning, api.RunFinalizing, api.RunCompleted, api.RunFailed, api.RunCanceled}
	var wantRunStatuses []string
	for _, s := range runStatuses {
		wantRunStatuses = append(wantRunStatuses, string(s))
	}
	var kinds []string
	for _, k := range api.MetricKinds {
		if k != api.MetricNumber { // a number leaves kind out
			kinds = append(kinds, k)
		}
	}
	if got := enum("components", "schemas", "MetricKind"); !slices.Equal(got, sorted(kinds)) {
		t.Errorf("MetricKind enum = %q, want %q", got, sorted(kinds))
	}
	if got := enum("components", "schemas", "RunStatus"); !slices.Equal(got, sorted(wantRunStatuses)) {
		t.Errorf("RunStatus enum = %q, want %q", got, sorted(wantRunStatuses))
	}
	wantNodeStates := []string{store.NodeStarting, store.NodeIdle, store.NodeRunning,
		store.NodeLeaving, store.NodeUnusable, store.NodePreempted}
	if got := enum("components", "schemas", "NodeState"); !slices.Equal(got, sorted(wantNodeStates)) {
		t.Errorf("NodeState enum = %q, want %q", got, sorted(wantNodeStates))
	}
	wantInstanceStates := []string{nodes.InstanceCreating, nodes.InstanceRunning, nodes.InstanceStopping,
		nodes.InstanceStopped, nodes.InstanceStarting, nodes.InstanceRestarting, nodes.InstanceFailed}
	if got := enum("components", "schemas", "InstanceStatus", "properties", "state"); !slices.Equal(got, sorted(wantInstanceStates)) {
		t.Errorf("InstanceStatus.state enum = %q, instance states are %q", got, sorted(wantInstanceStates))
	}
	if p := obj(t, doc, "components", "schemas", "Node", "properties", "state"); p["$ref"] != "#/components/schemas/NodeState" {
		t.Error("Node.state does not refer to the NodeState schema")
	}
	// A run's compute_spec makes a cluster: its properties are the cluster's,
	// with the same types and enums.
	if p := obj(t, doc, "components", "schemas", "RunSubmit", "properties", "compute_spec"); schemaRef(p) != "#/components/schemas/ComputeSpec" {
		t.Error("RunSubmit.compute_spec does not refer to the ComputeSpec schema")
	}
	for name, p := range obj(t, doc, "components", "schemas", "ComputeSpec", "properties") {
		c, ok := obj(t, doc, "components", "schemas", "ClusterProperties", "properties")[name].(map[string]any)
		if !ok {
			t.Errorf("ComputeSpec.%s is not a ClusterProperties property", name)
			continue
		}
		p := p.(map[string]any)
		for _, k := range []string{"type", "enum", "minimum", "default"} {
			if a, b := p[k], c[k]; !reflect.DeepEqual(a, b) {
				t.Errorf("ComputeSpec.%s has %s %v, ClusterProperties.%s %v", name, k, a, name, b)
			}
		}
	}
	// Core quotas go down to -1, no limit.
	for _, f := range []string{"Quota.dedicated_cores", "Quota.lowpriority_cores", "QuotaSet.dedicated_cores", "QuotaSet.lowpriority_cores"} {
		schema, prop, _ := strings.Cut(f, ".")
		if m := obj(t, doc, "components", "schemas", schema, "properties", prop)["minimum"]; m != float64(store.Unlimited) {
			t.Errorf("%s: minimum %v, want %d (no limit)", f, m, store.Unlimited)
		}
	}

	// Fields of Go type RunStatus use the RunStatus schema.
	for name, w := range types {
		for _, f := range wireFields(w.typ) {
			if f.typ != reflect.TypeFor[api.RunStatus]() {
				continue
			}
			p := obj(t, doc, "components", "schemas", name, "properties", f.name)
			if all, ok := p["allOf"].([]any); ok && len(all) == 1 {
				p = all[0].(map[string]any)
			}
			if p["$ref"] != "#/components/schemas/RunStatus" {
				t.Errorf("%s.%s is a RunStatus but does not refer to the RunStatus schema", name, f.name)
			}
		}
	}
}

// computeSchemas names each compute kind's schemas: its properties (secrets
// included, as written on create), its status, and its updatable
// properties ("" when it has none). Every registered kind must be listed.
var computeSchemas = map[string]struct{ props, status, update string }{
	"cluster":    {"ClusterProperties", "ClusterStatus", "ClusterPropertiesUpdate"},
	"instance":   {"InstanceProperties", "InstanceStatus", "InstancePropertiesUpdate"},
	"remote":     {"RemoteProperties", "RemoteStatus", "RemotePropertiesUpdate"},
	"local":      {"LocalProperties", "LocalStatus", ""},
	"slurm":      {"SlurmProperties", "SlurmStatus", "SlurmPropertiesUpdate"},
	"kubernetes": {"KubernetesProperties", "KubernetesStatus", "KubernetesPropertiesUpdate"},
	"spark":      {"SparkProperties", "SparkStatus", "SparkPropertiesUpdate"},
	"databricks": {"DatabricksProperties", "DatabricksStatus", "DatabricksPropertiesUpdate"},
}

// serverSet are the properties the server sets itself, by properties
// schema: they must be readOnly, and only they may be.
var serverSet = map[string][]string{
	"RemoteProperties":     {"host_key"},
	"SlurmProperties":      {"host_key"},
	"KubernetesProperties": {"server"},
	"SparkProperties":      {"host_key"},
}

// refs lists the $refs of a oneOf or anyOf, sorted.
func refs(t *testing.T, doc map[string]any, keyword string, path ...string) []string {
	t.Helper()
	list, ok := obj(t, doc, path...)[keyword].([]any)
	if !ok {
		t.Errorf("%s has no %s", strings.Join(path, "."), keyword)
		return nil
	}
	var out []string
	for _, v := range list {
		r, _ := v.(map[string]any)["$ref"].(string)
		out = append(out, strings.TrimPrefix(r, "#/components/schemas/"))
	}
	return sorted(out)
}

// checkComputeSchemas checks the per-kind schemas: every kind has them, the
// type-dependent properties of Compute, ComputeCreate and ComputeUpdate
// offer exactly the kinds' schemas, secrets are writeOnly and
// server-set properties readOnly.
func checkComputeSchemas(t *testing.T, doc map[string]any) {
	t.Helper()
	var registered []string
	for _, o := range []compute.Origin{compute.Created, compute.Attached, compute.BuiltIn} {
		registered = append(registered, compute.Types(o)...)
	}
	listed := slices.Sorted(maps.Keys(computeSchemas))
	if !slices.Equal(sorted(registered), listed) {
		t.Fatalf("computeSchemas lists kinds %q, registered kinds are %q", listed, sorted(registered))
	}

	var props, statuses, creatable, updates []string
	for _, typ := range listed {
		cs, k := computeSchemas[typ], kind(t, typ)
		props = append(props, cs.props)
		statuses = append(statuses, cs.status)
		if k.Origin() != compute.BuiltIn {
			creatable = append(creatable, cs.props)
		}
		if cs.update != "" {
			updates = append(updates, cs.update)
		}
		if (cs.update != "") != (len(k.UpdatableFields()) > 0) {
			t.Errorf("computeSchemas[%q].update = %q, but the kind has updatable fields %q", typ, cs.update, k.UpdatableFields())
		}

		// Secrets are write-only and optional (they are never returned),
		// and only secrets are write-only.
		schema := obj(t, doc, "components", "schemas", cs.props)
		all, _ := schema["properties"].(map[string]any)
		var required []string
		if r, ok := schema["required"]; ok {
			required = stringList(r)
		}
		for _, f := range k.SecretFields() {
			p, ok := all[f].(map[string]any)
			switch {
			case !ok:
				t.Errorf("%s.%s: secret not documented", cs.props, f)
			case p["writeOnly"] != true:
				t.Errorf("%s.%s is a secret but not writeOnly", cs.props, f)
			case slices.Contains(required, f):
				t.Errorf("%s.%s is a secret, never returned, so it cannot be required", cs.props, f)
			}
		}
		for name, p := range all {
			p := p.(map[string]any)
			if p["writeOnly"] == true && !slices.Contains(k.SecretFields(), name) {
				t.Errorf("%s.%s is writeOnly but not one of the kind's secret fields %q", cs.props, name, k.SecretFields())
			}
			set := slices.Contains(serverSet[cs.props], name)
			if got := p["readOnly"] == true; got != set {
				t.Errorf("%s.%s: readOnly = %v, want %v (set by the server: %q)", cs.props, name, got, set, serverSet[cs.props])
			}
			if set && (slices.Contains(required, name) || slices.Contains(k.UpdatableFields(), name)) {
				t.Errorf("%s.%s is set by the server, so it can be neither required nor updatable", cs.props, name)
			}
		}
	}
	for name := range serverSet {
		if !slices.Contains(props, name) {
			t.Errorf("serverSet names %s, not a kind's properties schema", name)
		}
	}

	if got := refs(t, doc, "oneOf", "components", "schemas", "Compute", "properties", "properties"); !slices.Equal(got, sorted(props)) {
		t.Errorf("Compute.properties is one of %q, want the kinds' properties %q", got, sorted(props))
	}
	if got := refs(t, doc, "oneOf", "components", "schemas", "Compute", "properties", "status"); !slices.Equal(got, sorted(statuses)) {
		t.Errorf("Compute.status is one of %q, want the kinds' statuses %q", got, sorted(statuses))
	}
	if got := refs(t, doc, "oneOf", "components", "schemas", "ComputeCreate", "properties", "properties"); !slices.Equal(got, sorted(creatable)) {
		t.Errorf("ComputeCreate.properties is one of %q, want the created and attached kinds' properties %q", got, sorted(creatable))
	}
	if got := refs(t, doc, "anyOf", "components", "schemas", "ComputeUpdate", "properties", "properties"); !slices.Equal(got, sorted(updates)) {
		t.Errorf("ComputeUpdate.properties is any of %q, want the kinds' updatable properties %q", got, sorted(updates))
	}

	// An attached target's SSH port: 1 to 65535, 22 when not given.
	for _, name := range []string{"RemoteProperties", "SlurmProperties", "SparkProperties"} {
		port := obj(t, doc, "components", "schemas", name, "properties", "ssh_port")
		if port["minimum"] != float64(1) || port["maximum"] != float64(65535) || port["default"] != float64(22) {
			t.Errorf("%s.ssh_port: minimum %v, maximum %v, default %v; want 1, 65535, 22", name, port["minimum"], port["maximum"], port["default"])
		}
	}
	// A slurm target's partitions are SlurmPartition objects.
	if p := obj(t, doc, "components", "schemas", "SlurmStatus", "properties", "partitions", "items"); p["$ref"] != "#/components/schemas/SlurmPartition" {
		t.Error("SlurmStatus.partitions items do not refer to the SlurmPartition schema")
	}
}
