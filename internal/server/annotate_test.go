package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/dispatch"
)

// decodeAs decodes a response body, failing unless the status is want.
func decodeAs[T any](t *testing.T, rec interface {
	Result() *http.Response
}, want int) T {
	t.Helper()
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, want, body)
	}
	var out T
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return out
}

// A run annotates itself with its own token: tags, files, metrics of every
// kind, and a failure it declares; its user reads them back. The token
// still reads nothing and cancels nothing.
func TestRunAnnotatesItself(t *testing.T) {
	s := newTestServer(t)
	s.addNode("n1")
	run := s.placedRun("n1", "")
	if err := s.disp.Report(s.ctx, "n1", api.AttemptRef{RunID: run.ID, Attempt: 1}, api.AttemptReport{Status: api.RunRunning}); err != nil {
		t.Fatal(err)
	}
	tok := s.disp.RunToken(run.ID, 1)
	base := "/api/v1/workspaces/default/runs/" + run.ID

	// Tags: the run sets two, its user changes one and removes another.
	got := decodeAs[api.Run](t, s.serve(request("PATCH", base, tok, strings.NewReader(`{"tags":{"stage":"train","lr":"0.1"}}`))), http.StatusOK)
	if got.Tags["stage"] != "train" || got.Tags["lr"] != "0.1" {
		t.Fatalf("tags after the run's PATCH: %v", got.Tags)
	}
	got = decodeAs[api.Run](t, s.serve(request("PATCH", base, s.token, strings.NewReader(`{"tags":{"stage":"eval","lr":null}}`))), http.StatusOK)
	if len(got.Tags) != 1 || got.Tags["stage"] != "eval" {
		t.Fatalf("tags after the user's PATCH: %v", got.Tags)
	}
	if e := errorOf(t, s.serve(request("PATCH", base, tok, strings.NewReader(`{"tags":{"":"x"}}`))), http.StatusBadRequest); e.Field != "tags" {
		t.Errorf("an empty tag name: field %q", e.Field)
	}

	// Files: the run uploads an image and a model; they are listed and served.
	if rec := s.serve(request("PUT", base+"/files/outputs/images/loss.png", tok, strings.NewReader("\x89PNG..."))); rec.Code != http.StatusCreated {
		t.Fatalf("PUT image: %d %s", rec.Code, rec.Body)
	}
	if rec := s.serve(request("PUT", base+"/files/model.pkl", tok, strings.NewReader("weights"))); rec.Code != http.StatusCreated {
		t.Fatalf("PUT model: %d %s", rec.Code, rec.Body)
	}
	errorOf(t, s.serve(request("PUT", base+"/files/a%2F..%2F..%2Fb", tok, strings.NewReader("x"))), http.StatusBadRequest) // (/../ itself is cleaned by the mux)
	files := decodeAs[api.RunFileList](t, s.serve(request("GET", base+"/files", s.token, nil)), http.StatusOK)
	if len(files.Items) != 2 || files.Items[0].Path != "model.pkl" || files.Items[1].Path != "outputs/images/loss.png" || files.Items[1].Origin != api.FileUploaded {
		t.Fatalf("files = %+v", files.Items)
	}
	rec := s.serve(request("GET", base+"/files/outputs/images/loss.png", s.token, nil))
	if rec.Code != http.StatusOK || rec.Body.String() != "\x89PNG..." || rec.Header().Get("Content-Type") != "image/png" {
		t.Fatalf("GET image: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	errorOf(t, s.serve(request("GET", base+"/files/nope.txt", s.token, nil)), http.StatusNotFound)

	// Metrics of every kind; an image metric must name a file of the run.
	body := `{"metrics":[{"name":"loss","value":0.5,"step":1},{"name":"optimizer","kind":"string","text":"adam"},
		{"name":"curve","kind":"row","data":{"epoch":1,"acc":0.8}},{"name":"curve","kind":"row","data":{"epoch":2,"acc":0.9}},
		{"name":"cm","kind":"json","data":{"schema_type":"confusion_matrix","data":{"matrix":[[1,0],[0,1]]}}},
		{"name":"loss_plot","kind":"image","text":"outputs/images/loss.png"}]}`
	if rec := s.serve(request("POST", base+"/metrics", tok, strings.NewReader(body))); rec.Code != http.StatusCreated {
		t.Fatalf("POST metrics: %d %s", rec.Code, rec.Body)
	}
	for _, bad := range []struct{ body, field string }{
		{`{"name":"p","kind":"image","text":"outputs/missing.png"}`, "text"},
		{`{"name":"r","kind":"row","data":{"a":[1,2]}}`, "data"},
		{`{"name":"r","kind":"row","data":[1,2]}`, "data"},
		{`{"name":"s","kind":"string","text":"x","value":2}`, "value"},
		{`{"name":"n","value":1,"text":"x"}`, "kind"},
		{`{"name":"k","kind":"table","data":{}}`, "kind"},
	} {
		if e := errorOf(t, s.serve(request("POST", base+"/metrics", tok, strings.NewReader(bad.body))), http.StatusBadRequest); e.Field != bad.field {
			t.Errorf("%s: field %q (%s), want %q", bad.body, e.Field, e.Message, bad.field)
		}
	}
	ms := decodeAs[api.MetricList](t, s.serve(request("GET", base+"/metrics", s.token, nil)), http.StatusOK)
	var kinds []string
	for _, m := range ms.Items {
		kinds = append(kinds, m.Name+"/"+m.Kind+"/"+m.Text+string(m.Data))
	}
	want := `cm/json/{"schema_type":"confusion_matrix","data":{"matrix":[[1,0],[0,1]]}} curve/row/{"epoch":1,"acc":0.8} curve/row/{"epoch":2,"acc":0.9} loss// loss_plot/image/outputs/images/loss.png optimizer/string/adam`
	if strings.Join(kinds, " ") != want {
		t.Fatalf("metrics:\n got %s\nwant %s", strings.Join(kinds, " "), want)
	}

	// Still no reads and no cancel with the run token.
	for _, r := range []struct{ method, path string }{{"GET", base}, {"GET", base + "/files"}, {"GET", base + "/files/model.pkl"}, {"POST", base + ":cancel"}, {"POST", base + ":complete"}} {
		if rec := s.serve(request(r.method, r.path, tok, nil)); rec.Code != http.StatusForbidden {
			t.Errorf("%s %s with the run token: %d, want 403", r.method, r.path, rec.Code)
		}
	}

	// The run says it failed; it goes on, and ends Failed although it exits 0.
	got = decodeAs[api.Run](t, s.serve(request("POST", base+":fail", tok, strings.NewReader(`{"error":"accuracy below target"}`))), http.StatusAccepted)
	if got.Status != api.RunRunning || got.FailRequested != "accuracy below target" {
		t.Fatalf("after :fail: status %s, fail_requested %q", got.Status, got.FailRequested)
	}
	zero := 0
	if err := s.disp.Report(s.ctx, "n1", api.AttemptRef{RunID: run.ID, Attempt: 1}, api.AttemptReport{Status: api.RunCompleted, ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	got = decodeAs[api.Run](t, s.serve(request("GET", base, s.token, nil)), http.StatusOK)
	if got.Status != api.RunFailed || got.StatusReason != dispatch.ReasonMarkedFailed || got.Error != "accuracy below target" ||
		got.Tags["stage"] != "eval" || got.Metrics["optimizer"].Text != "adam" {
		t.Fatalf("ended run: %s %s %q tags %v metrics %v", got.Status, got.StatusReason, got.Error, got.Tags, got.Metrics)
	}
	// Its user tags it after its end; the run's token is no longer good.
	decodeAs[api.Run](t, s.serve(request("PATCH", base, s.token, strings.NewReader(`{"tags":{"reviewed":"yes"}}`))), http.StatusOK)
	errorOf(t, s.serve(request("PATCH", base, tok, strings.NewReader(`{"tags":{"late":"x"}}`))), http.StatusUnauthorized)
}

// An interactive run (start_logging): Running at once without compute or
// command, logged to with the user's token, ended with :complete.
func TestInteractiveRunOverHTTP(t *testing.T) {
	s := newTestServer(t)
	runs := "/api/v1/workspaces/default/runs"
	if e := errorOf(t, s.serve(request("POST", runs, s.token, strings.NewReader(`{"interactive":true,"compute":"local"}`))), http.StatusBadRequest); e.Field != "compute" {
		t.Errorf("an interactive run with a compute: field %q", e.Field)
	}
	run := decodeAs[api.Run](t, s.serve(request("POST", runs, s.token, strings.NewReader(`{"interactive":true,"experiment":"notebook","tags":{"who":"me"}}`))), http.StatusCreated)
	if !run.Interactive || run.Status != api.RunRunning || run.Compute != "" || run.Tags["who"] != "me" || run.Experiment != "notebook" {
		t.Fatalf("interactive run = %+v", run)
	}
	base := runs + "/" + run.ID
	if rec := s.serve(request("POST", base+"/metrics", s.token, strings.NewReader(`{"name":"acc","value":0.9}`))); rec.Code != http.StatusCreated {
		t.Fatalf("metric: %d %s", rec.Code, rec.Body)
	}
	if rec := s.serve(request("PUT", base+"/files/outputs/model.pkl", s.token, strings.NewReader("w"))); rec.Code != http.StatusCreated {
		t.Fatalf("file: %d %s", rec.Code, rec.Body)
	}
	done := decodeAs[api.Run](t, s.serve(request("POST", base+":complete", s.token, nil)), http.StatusAccepted)
	if done.Status != api.RunCompleted || done.EndedAt == nil {
		t.Fatalf("completed run = %+v", done)
	}
	decodeAs[api.Run](t, s.serve(request("POST", base+":complete", s.token, nil)), http.StatusAccepted) // again: fine
	errorOf(t, s.serve(request("POST", base+":fail", s.token, nil)), http.StatusConflict)

	failed := decodeAs[api.Run](t, s.serve(request("POST", runs, s.token, strings.NewReader(`{"interactive":true}`))), http.StatusCreated)
	got := decodeAs[api.Run](t, s.serve(request("POST", runs+"/"+failed.ID+":fail", s.token, strings.NewReader(`{"error":"oops"}`))), http.StatusAccepted)
	if got.Status != api.RunFailed || got.Error != "oops" {
		t.Fatalf("failed interactive run = %s %q", got.Status, got.Error)
	}

	s.addNode("n1")
	submitted := s.placedRun("n1", "")
	errorOf(t, s.serve(request("POST", runs+"/"+submitted.ID+":complete", s.token, nil)), http.StatusConflict)
	errorOf(t, s.serve(request("POST", runs+"/"+submitted.ID+":finish", s.token, nil)), http.StatusNotFound)
}

// Registered environments: versions count up as the content changes.
func TestEnvironmentRegistry(t *testing.T) {
	s := newTestServer(t)
	envs := "/api/v1/workspaces/default/environments"
	reg := func(body string, status int) api.NamedEnvironment {
		t.Helper()
		return decodeAs[api.NamedEnvironment](t, s.serve(request("POST", envs, s.token, strings.NewReader(body))), status)
	}
	conda := `{"name":"sk","environment":{"conda":"dependencies:\n  - python=3.11\n  - pip:\n    - scikit-learn\n"},"env":{"A":"1"}}`
	v1 := reg(conda, http.StatusCreated)
	if v1.Version != 1 || v1.CreatedBy != "admin" || v1.Env["A"] != "1" {
		t.Fatalf("v1 = %+v", v1)
	}
	if again := reg(conda, http.StatusOK); again.Version != 1 {
		t.Fatalf("registering the same again: version %d", again.Version)
	}
	v2 := reg(`{"name":"SK","environment":{"requirements":"six\n"}}`, http.StatusCreated)
	if v2.Version != 2 || v2.Name != "sk" {
		t.Fatalf("v2 = %+v", v2)
	}
	if got := decodeAs[api.NamedEnvironment](t, s.serve(request("GET", envs+"/sk", s.token, nil)), http.StatusOK); got.Version != 2 {
		t.Fatalf("latest = %+v", got)
	}
	if got := decodeAs[api.NamedEnvironment](t, s.serve(request("GET", envs+"/sk?version=1", s.token, nil)), http.StatusOK); got.Environment.Conda == "" {
		t.Fatalf("version 1 = %+v", got)
	}
	errorOf(t, s.serve(request("GET", envs+"/sk?version=0", s.token, nil)), http.StatusBadRequest)
	errorOf(t, s.serve(request("GET", envs+"/sk?version=3", s.token, nil)), http.StatusNotFound)
	errorOf(t, s.serve(request("GET", envs+"/nope", s.token, nil)), http.StatusNotFound)
	for body, field := range map[string]string{
		`{"name":"bad name","environment":{}}`:                          "name",
		`{"name":"x","environment":{"conda":"variables: {A: b}"}}`:      "environment.conda",
		`{"name":"x","environment":{"image":"a","requirements":"six"}}`: "environment",
		`{"name":"x","env":{"PADDOCK_X":"1"}}`:                          "env",
	} {
		if e := errorOf(t, s.serve(request("POST", envs, s.token, strings.NewReader(body))), http.StatusBadRequest); e.Field != field {
			t.Errorf("%s: field %q, want %q", body, e.Field, field)
		}
	}
	reg(`{"name":"base"}`, http.StatusCreated)
	list := decodeAs[api.EnvironmentList](t, s.serve(request("GET", envs, s.token, nil)), http.StatusOK)
	if len(list.Items) != 2 || list.Items[0].Name != "base" || list.Items[1].Version != 2 {
		t.Fatalf("list = %+v", list.Items)
	}
}
