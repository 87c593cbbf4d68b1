package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// testMetricKinds: numbers, strings, rows, JSON values and images come
// back as they were added, ordered by name then step then insertion.
func testMetricKinds(t *testing.T, s store.Store) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	in := []api.Metric{
		{Name: "loss", Value: 0.5, Step: 1, Time: now},
		{Name: "note", Kind: api.MetricString, Text: "", Time: now}, // an empty string is a value too
		{Name: "table", Kind: api.MetricRow, Data: json.RawMessage(`{"epoch":1,"acc":0.5}`), Time: now},
		{Name: "table", Kind: api.MetricRow, Data: json.RawMessage(`{"epoch":2,"acc":0.75}`), Time: now},
		{Name: "cm", Kind: api.MetricJSON, Data: json.RawMessage(`{"data":{"matrix":[[1,0],[0,1]]}}`), Time: now},
		{Name: "plot", Kind: api.MetricImage, Text: "outputs/plot.png", Time: now},
		{Name: "note", Kind: api.MetricString, Text: "héllo", Time: now},
	}
	if err := s.AddMetrics(ctx(t), "run-1", in); err != nil {
		t.Fatal(err)
	}
	got, err := s.Metrics(ctx(t), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Metric{in[4], in[0], in[1], in[6], in[5], in[2], in[3]}
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Fatalf("Metrics (-want +got):\n%s", d)
	}
}

// testRunTags: tags are set, overwritten and removed per run, and read for
// many runs at once.
func testRunTags(t *testing.T, s store.Store) {
	if err := s.SetRunTags(ctx(t), "run-1", map[string]string{"a": "1", "b": "2"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRunTags(ctx(t), "run-1", map[string]string{"a": "one", "c": ""}, []string{"b", "never-set"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRunTags(ctx(t), "run-2", map[string]string{"x": "y"}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.RunTags(ctx(t), "run-1", "run-2", "run-3")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{"run-1": {"a": "one", "c": ""}, "run-2": {"x": "y"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("RunTags (-want +got):\n%s", d)
	}
	if got, err := s.RunTags(ctx(t)); err != nil || len(got) != 0 {
		t.Fatalf("RunTags() = %v, %v; want nothing", got, err)
	}
}

// testEnvironments: versions count up per name (case-insensitively, in
// each workspace), registering the latest content again makes no
// version, and lookups find the latest or a given version.
func testEnvironments(t *testing.T, s store.Store) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	env := func(ws, name, req string) store.Environment {
		return store.Environment{Workspace: ws, NamedEnvironment: api.NamedEnvironment{Name: name,
			Environment: api.Environment{Requirements: req}, Env: map[string]string{"A": "b"}, CreatedBy: "ana", CreatedAt: now}}
	}
	reg := func(e store.Environment, wantVersion int, wantNew bool) store.Environment {
		t.Helper()
		got, created, err := s.RegisterEnvironment(ctx(t), e)
		if err != nil || got.Version != wantVersion || created != wantNew {
			t.Fatalf("RegisterEnvironment(%s %q) = version %d new %v, %v; want %d %v", e.Name, e.Environment.Requirements, got.Version, created, err, wantVersion, wantNew)
		}
		return got
	}
	v1 := reg(env("ws", "Train", "numpy\n"), 1, true)
	reg(env("ws", "train", "numpy\n"), 1, false) // the same content: the latest version
	v2 := reg(env("ws", "TRAIN", "numpy\nscipy\n"), 2, true)
	reg(env("ws", "Train", "numpy\n"), 3, true) // back to v1's content: a new version all the same
	reg(env("other", "train", "numpy\n"), 1, true)
	reg(env("ws", "serve", ""), 1, true)
	if v2.Name != "Train" {
		t.Errorf("version 2 is named %q; a name keeps its first spelling", v2.Name)
	}
	if got, err := s.GetEnvironment(ctx(t), "ws", "train", 0); err != nil || got.Version != 3 {
		t.Fatalf("GetEnvironment latest = %+v, %v; want version 3", got, err)
	}
	got, err := s.GetEnvironment(ctx(t), "ws", "TRAIN", 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(v1, got); d != "" {
		t.Fatalf("GetEnvironment version 1 (-want +got):\n%s", d)
	}
	for _, c := range []struct {
		name    string
		version int
	}{{"train", 4}, {"nope", 0}} {
		if _, err := s.GetEnvironment(ctx(t), "ws", c.name, c.version); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("GetEnvironment(%s, %d) = %v, want NotFound", c.name, c.version, err)
		}
	}
	list, err := s.ListEnvironments(ctx(t), "ws")
	if err != nil || len(list) != 2 || list[0].Name != "serve" || list[1].Name != "Train" || list[1].Version != 3 {
		t.Fatalf("ListEnvironments = %+v, %v; want serve v1 and Train v3", list, err)
	}
}
