package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
)

// The fuzz targets of the API's request bodies: each decodes arbitrary
// bytes as the server does and validates them as the server does, on a
// real store. Whatever the input, the answer is a result that keeps the
// rules or an *api.Error a user can act on: never a panic, never an
// internal error. Seeds are in testdata/fuzz/<target>/.

// wantUserError fails unless err is an *api.Error other than Internal.
func wantUserError(t *testing.T, input []byte, err error) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Code == api.CodeInternal || e.Message == "" {
		t.Fatalf("input %q: error %v (%T) is not one a user can act on", input, err, err)
	}
}

// fuzzServer is a test server with a Succeeded cluster besides local.
func fuzzServer(f *testing.F) *testServer {
	s := newTestServer(f)
	props, _ := json.Marshal(map[string]any{"vm_size": "STANDARD_NC6", "max_nodes": 4})
	if _, err := s.ws.CreateCompute(s.ctx, "default", "admin", api.ComputeCreate{Name: "gpu-cluster", Type: "cluster", Properties: props}); err != nil {
		f.Fatal(err)
	}
	rec, err := s.st.GetCompute(s.ctx, "default", "gpu-cluster")
	if err != nil {
		f.Fatal(err)
	}
	rec.State = api.StateSucceeded
	if err := s.st.UpdateCompute(s.ctx, &rec); err != nil {
		f.Fatal(err)
	}
	return s
}

// FuzzComputeCreate: a compute create body, decoded and validated
// (PrepareCompute: everything CreateCompute checks before it stores or
// connects). What passes has no NUL byte and normalises to itself.
func FuzzComputeCreate(f *testing.F) {
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var in api.ComputeCreate
		if err := decodeBody(bytes.NewReader(body), &in); err != nil {
			wantUserError(t, body, err)
			return
		}
		_, props, secrets, err := s.ws.PrepareCompute(s.ctx, "default", "admin", in)
		if err != nil {
			wantUserError(t, body, err)
			return
		}
		if bytes.Contains(props, []byte(`\u0000`)) {
			t.Fatalf("input %q: properties with a NUL byte passed: %s", body, props)
		}
		// Normalised properties, with the secrets back, normalise to themselves.
		var again map[string]any
		json.Unmarshal(props, &again)
		for k, v := range secrets {
			again[k] = v.Reveal()
		}
		raw, _ := json.Marshal(again)
		_, props2, _, err := s.ws.PrepareCompute(s.ctx, "default", "admin", api.ComputeCreate{Name: in.Name, Type: in.Type, Properties: raw})
		if err != nil {
			t.Fatalf("input %q: normalised properties %s refused: %v", body, raw, err)
		}
		var a, b map[string]any
		json.Unmarshal(props, &a)
		json.Unmarshal(props2, &b)
		if d := cmp.Diff(a, b); d != "" {
			t.Fatalf("input %q: normalising twice differs (-first +second):\n%s", body, d)
		}
	})
}

// FuzzRunSubmit: a run submission body, decoded and validated
// (ValidateRun). What passes keeps every bound and carries no NUL byte
// into argv or the environment.
func FuzzRunSubmit(f *testing.F) {
	s := fuzzServer(f)
	known := strings.Repeat("ab", 32)
	hasSource := func(d string) bool { return d == known }
	f.Fuzz(func(t *testing.T, body []byte) {
		var in api.RunSubmit
		if err := decodeBody(bytes.NewReader(body), &in); err != nil {
			wantUserError(t, body, err)
			return
		}
		run, err := s.ws.ValidateRun(s.ctx, "default", "admin", in, hasSource)
		if err != nil {
			wantUserError(t, body, err)
			return
		}
		res := run.Resources
		switch {
		case run.Compute != "local" && run.Compute != "gpu-cluster":
			t.Fatalf("input %q: run on %q", body, run.Compute)
		case len(run.Command) == 0 || strings.ContainsRune(strings.Join(run.Command, ""), 0):
			t.Fatalf("input %q: command %q passed", body, run.Command)
		case run.NodeCount < 1 || run.NodeCount > compute.MaxClusterNodes || run.ProcessCountPerNode != 1:
			t.Fatalf("input %q: %d nodes, %d processes", body, run.NodeCount, run.ProcessCountPerNode)
		case res.Cores < 0 || res.Cores > 1024 || res.MemoryGB < 0 || res.MemoryGB > 65536 || res.GPUs < 0 || res.GPUs > 64:
			t.Fatalf("input %q: resources %+v passed", body, res)
		case run.MaxRunDurationSeconds < 0 || run.MaxRunDurationSeconds > 365*24*3600:
			t.Fatalf("input %q: max_run_duration_seconds %d passed", body, run.MaxRunDurationSeconds)
		case run.Source != "" && run.Source != known:
			t.Fatalf("input %q: source %q passed", body, run.Source)
		}
		for k, v := range run.Env {
			if strings.ContainsRune(k+v, 0) || strings.HasPrefix(k, "PADDOCK_") {
				t.Fatalf("input %q: env %q=%q passed", body, k, v)
			}
		}
		if strings.HasPrefix(run.Environment.Image, "-") {
			t.Fatalf("input %q: image %q passed", body, run.Environment.Image)
		}
	})
}

// FuzzAgentLogs: an agent's log batch body, decoded and checked
// (logBatch). What passes keeps the batch limits, and encodes back to a
// batch that passes the same.
func FuzzAgentLogs(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		lines, err := logBatch(bytes.NewReader(body))
		if err != nil {
			wantUserError(t, body, err)
			return
		}
		if len(lines) > api.MaxLogBatchLines {
			t.Fatalf("input %q: %d lines passed", body, len(lines))
		}
		in := api.AgentLogs{Lines: make([]api.AgentLogLine, len(lines))}
		for i, l := range lines {
			if l.ASeq < 1 || l.Stream != "stdout" && l.Stream != "stderr" || len(l.Text) > api.MaxLogLineBytes {
				t.Fatalf("input %q: line %+v passed", body, l)
			}
			in.Lines[i] = api.AgentLogLine{N: l.ASeq, Stream: l.Stream, TimeNS: l.Time.UnixNano(), Text: l.Text}
		}
		again, _ := json.Marshal(in)
		if n := api.LogBatchLen(in.Lines); n != len(in.Lines) && len(again) <= api.MaxLogBatchBytes/6 {
			t.Fatalf("input %q: LogBatchLen takes %d of %d lines of a %d-byte batch", body, n, len(in.Lines), len(again))
		}
		lines2, err := logBatch(bytes.NewReader(again))
		if err != nil || len(lines2) != len(lines) {
			t.Fatalf("input %q: re-encoded batch: %d lines, %v", body, len(lines2), err)
		}
	})
}
