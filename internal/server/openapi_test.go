package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
)

// documentedRoutes mirrors the routes NewAPI registers. A route added to
// server.go must be added here and to openapi.json.
var documentedRoutes = []struct{ method, path string }{
	{"GET", "/healthz"},
	{"GET", "/metrics"},
	{"GET", "/api/v1/openapi.json"},
	{"GET", "/api/v1/version"},
	{"GET", "/api/v1/workspaces/{ws}/computes"},
	{"POST", "/api/v1/workspaces/{ws}/computes"},
	{"GET", "/api/v1/workspaces/{ws}/computes/{name}"},
	{"PATCH", "/api/v1/workspaces/{ws}/computes/{name}"},
	{"DELETE", "/api/v1/workspaces/{ws}/computes/{name}"},
	{"GET", "/api/v1/workspaces/{ws}/sizes"},
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

func routeKey(method, path string) string { return method + " " + path }

func TestOpenAPIHeader(t *testing.T) {
	doc := loadDoc(t)
	if doc["openapi"] != "3.0.3" {
		t.Errorf("openapi = %v, want 3.0.3", doc["openapi"])
	}
	info := obj(t, doc, "info")
	if info["title"] != "Paddock API" || info["version"] != "v1" {
		t.Errorf("info = %v/%v, want Paddock API/v1", info["title"], info["version"])
	}
	bearer := obj(t, doc, "components", "securitySchemes", "bearerAuth")
	if bearer["type"] != "http" || bearer["scheme"] != "bearer" {
		t.Errorf("bearerAuth = %v, want an HTTP bearer scheme", bearer)
	}
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
	fill := strings.NewReplacer("{ws}", "default", "{name}", "gpu-cluster")
	for _, r := range documentedRoutes {
		req := httptest.NewRequest(r.method, fill.Replace(r.path), nil)
		if _, pattern := a.mux.Handler(req); pattern != routeKey(r.method, r.path) {
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

			// Every workspace route is authenticated; the others are not.
			_, secured := op["security"]
			if ws := strings.HasPrefix(path, "/api/v1/workspaces/"); ws != secured {
				t.Errorf("%s: security present = %v, want %v", where, secured, ws)
			} else if ws {
				b, _ := json.Marshal(op["security"])
				if string(b) != `[{"bearerAuth":[]}]` {
					t.Errorf("%s: security = %s, want bearerAuth", where, b)
				}
				resp := op["responses"].(map[string]any)
				for _, code := range []string{"401", "404", "500"} {
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
		"POST /api/v1/workspaces/{ws}/computes":          {"201", "400", "409"},
		"PATCH /api/v1/workspaces/{ws}/computes/{name}":  {"200", "400", "409"},
		"DELETE /api/v1/workspaces/{ws}/computes/{name}": {"202", "400"},
		"GET /api/v1/workspaces/{ws}/computes/{name}":    {"200"},
		"GET /api/v1/workspaces/{ws}/computes":           {"200"},
		"GET /api/v1/workspaces/{ws}/sizes":              {"200"},
		"GET /api/v1/version":                            {"200"},
		"GET /api/v1/openapi.json":                       {"200"},
		"GET /healthz":                                   {"200"},
		"GET /metrics":                                   {"200"},
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
	created := obj(t, paths, "/api/v1/workspaces/{ws}/computes", "post", "responses", "201")
	if _, ok := obj(t, created, "headers")["Location"]; !ok {
		t.Error("POST .../computes 201: no Location header")
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
}

// jsonFields lists the JSON names of a struct's fields, embedded structs
// flattened.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
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

// TestOpenAPISchemasMatchGoTypes keeps the schemas' property names in step
// with the wire types' json tags and the kinds' secret and updatable fields.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := loadDoc(t)
	cluster, instance := kind(t, "cluster"), kind(t, "instance")
	cases := map[string][]string{
		"Compute":                  jsonFields(reflect.TypeFor[api.Compute]()),
		"ComputeCreate":            jsonFields(reflect.TypeFor[api.ComputeCreate]()),
		"ComputeUpdate":            jsonFields(reflect.TypeFor[api.ComputeUpdate]()),
		"ComputeList":              jsonFields(reflect.TypeFor[api.ComputeList]()),
		"ProvisioningError":        jsonFields(reflect.TypeFor[api.ProvisioningError]()),
		"Size":                     jsonFields(reflect.TypeFor[api.Size]()),
		"SizeList":                 jsonFields(reflect.TypeFor[api.SizeList]()),
		"Version":                  jsonFields(reflect.TypeFor[api.Version]()),
		"ErrorBody":                jsonFields(reflect.TypeFor[api.ErrorBody]()),
		"Error":                    jsonFields(reflect.TypeFor[api.Error]()),
		"ClusterProperties":        append(jsonFields(reflect.TypeFor[compute.ClusterProperties]()), cluster.SecretFields()...),
		"InstanceProperties":       append(jsonFields(reflect.TypeFor[compute.InstanceProperties]()), instance.SecretFields()...),
		"ClusterPropertiesUpdate":  cluster.UpdatableFields(),
		"InstancePropertiesUpdate": instance.UpdatableFields(),
		"ClusterStatus":            jsonFields(reflect.TypeFor[compute.ClusterStatus]()),
		"InstanceStatus":           jsonFields(reflect.TypeFor[compute.InstanceStatus]()),
		"LocalStatus":              jsonFields(reflect.TypeFor[compute.LocalStatus]()),
	}
	for name, want := range cases {
		if got := schemaProps(t, doc, name); !slices.Equal(got, sorted(want)) {
			t.Errorf("schema %s has properties %q, Go type has %q", name, got, sorted(want))
		}
	}

	// Secrets are write-only.
	for _, f := range cluster.SecretFields() {
		p := obj(t, doc, "components", "schemas", "ClusterProperties", "properties", f)
		if p["writeOnly"] != true {
			t.Errorf("ClusterProperties.%s is a secret but not writeOnly", f)
		}
	}

	enum := func(path ...string) []string {
		var out []string
		for _, v := range obj(t, doc, path...)["enum"].([]any) {
			out = append(out, v.(string))
		}
		return sorted(out)
	}
	if got, want := enum("components", "schemas", "ComputeCreate", "properties", "type"), compute.Types(compute.Created); !slices.Equal(got, want) {
		t.Errorf("ComputeCreate.type enum = %q, creatable types are %q", got, want)
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
	codes := []api.Code{api.CodeInvalid, api.CodeUnauthenticated, api.CodeForbidden, api.CodeNotFound,
		api.CodeConflict, api.CodeUnavailable, api.CodeInternal}
	var wantCodes []string
	for _, c := range codes {
		wantCodes = append(wantCodes, string(c))
	}
	if got := enum("components", "schemas", "ErrorCode"); !slices.Equal(got, sorted(wantCodes)) {
		t.Errorf("ErrorCode enum = %q, want %q", got, sorted(wantCodes))
	}
}
