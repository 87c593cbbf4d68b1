package targets

import (
	"errors"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/testenv"
)

// newTestService is a Service on a fresh SQLite store with the default
// workspace and its local target.
func newTestService(t testing.TB) *Service {
	t.Helper()
	s := &Service{Store: testenv.Store(t), Box: testenv.Box(t), Sizes: testenv.Sizes(t)}
	if err := s.EnsureBuiltins(t.Context(), "default", "admin"); err != nil {
		t.Fatal(err)
	}
	return s
}

// wantField fails unless err is an Invalid error naming field (or is nil
// when field is "").
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	var e *api.Error
	switch {
	case field == "" && err != nil:
		t.Fatalf("refused: %v", err)
	case field != "" && (!errors.As(err, &e) || e.Code != api.CodeInvalid || e.Field != field):
		t.Fatalf("error %v, want Invalid naming %s", err, field)
	}
}

// runEdit changes a valid submission to local; field is what ValidateRun
// must then refuse ("" when it must accept it).
type runEdit struct {
	name  string
	edit  func(*api.RunSubmit)
	field string
}

func validateEdits(t *testing.T, s *Service, tests []runEdit) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := api.RunSubmit{Compute: "local", Command: []string{"python3", "train.py"}}
			tc.edit(&in)
			_, err := s.ValidateRun(t.Context(), "default", "admin", in, func(string) bool { return true })
			wantField(t, err, tc.field)
		})
	}
}

func TestValidateRunBoundsNumbers(t *testing.T) {
	s := newTestService(t)
	res := func(cores, mem float64, gpus int) *api.Resources {
		return &api.Resources{Cores: cores, MemoryGB: mem, GPUs: gpus}
	}
	tests := []runEdit{
		{"a year", func(in *api.RunSubmit) { in.MaxRunDurationSeconds = 365 * 24 * 3600 }, ""},
		{"a year and a second", func(in *api.RunSubmit) { in.MaxRunDurationSeconds = 365*24*3600 + 1 }, "max_run_duration_seconds"},
		{"duration near 2^63", func(in *api.RunSubmit) { in.MaxRunDurationSeconds = 1<<63 - 1 }, "max_run_duration_seconds"},
		{"negative duration", func(in *api.RunSubmit) { in.MaxRunDurationSeconds = -1 }, "max_run_duration_seconds"},
		{"most cores", func(in *api.RunSubmit) { in.Resources = res(1024, 0, 0) }, ""},
		{"too many cores", func(in *api.RunSubmit) { in.Resources = res(1024.5, 0, 0) }, "resources.cores"},
		{"1e308 cores", func(in *api.RunSubmit) { in.Resources = res(1e308, 0, 0) }, "resources.cores"},
		{"negative cores", func(in *api.RunSubmit) { in.Resources = res(-1, 0, 0) }, "resources.cores"},
		{"most memory", func(in *api.RunSubmit) { in.Resources = res(1, 65536, 0) }, ""},
		{"too much memory", func(in *api.RunSubmit) { in.Resources = res(1, 65537, 0) }, "resources.memory_gb"},
		{"negative memory", func(in *api.RunSubmit) { in.Resources = res(1, -1, 0) }, "resources.memory_gb"},
		{"most gpus", func(in *api.RunSubmit) { in.Resources = res(1, 1, 64) }, ""},
		{"too many gpus", func(in *api.RunSubmit) { in.Resources = res(1, 1, 65) }, "resources.gpus"},
		{"gpus near 2^63", func(in *api.RunSubmit) { in.Resources = res(1, 1, 1<<63-1) }, "resources.gpus"},
		{"node_count", func(in *api.RunSubmit) { in.NodeCount = 1<<63 - 1 }, "node_count"},
		{"negative node_count", func(in *api.RunSubmit) { in.NodeCount = -1 }, "node_count"},
		{"process_count_per_node", func(in *api.RunSubmit) { in.ProcessCountPerNode = 1<<63 - 1 }, "process_count_per_node"},
		{"most processes per node", func(in *api.RunSubmit) { in.ProcessCountPerNode = 256 }, ""},
		{"too many processes per node", func(in *api.RunSubmit) { in.ProcessCountPerNode = 257 }, "process_count_per_node"},
		{"negative processes per node", func(in *api.RunSubmit) { in.ProcessCountPerNode = -1 }, "process_count_per_node"},
		{"a conda file", func(in *api.RunSubmit) {
			in.Environment.Conda = "dependencies:\n  - python=3.11\n  - pip:\n    - six\n"
		}, ""},
		{"a conda file that is not one", func(in *api.RunSubmit) { in.Environment.Conda = "dependencies: [{x: 1}]" }, "environment.conda"},
		{"conda and requirements", func(in *api.RunSubmit) {
			in.Environment.Conda, in.Environment.Requirements = "name: x", "six"
		}, "environment"},
		{"NUL in a conda file", func(in *api.RunSubmit) { in.Environment.Conda = "name: x\x00" }, "environment.conda"},
	}
	validateEdits(t, s, tests)
}

func TestSetQuotaBoundsCores(t *testing.T) {
	s := newTestService(t)
	n := func(v int) *int { return &v }
	for _, tc := range []struct {
		in    api.QuotaSet
		field string
	}{
		{api.QuotaSet{DedicatedCores: n(MaxQuotaCores)}, ""},
		{api.QuotaSet{DedicatedCores: n(-1)}, ""},
		{api.QuotaSet{DedicatedCores: n(MaxQuotaCores + 1)}, "dedicated_cores"},
		{api.QuotaSet{LowPriorityCores: n(1<<63 - 1)}, "lowpriority_cores"},
		{api.QuotaSet{LowPriorityCores: n(-2)}, "lowpriority_cores"},
	} {
		_, err := s.SetQuota(t.Context(), "default", tc.in)
		wantField(t, err, tc.field)
	}
}

// A NUL byte cannot reach argv, the environment or a path: it is refused
// at submission naming the field, not left to fail the run later. An image
// cannot be an option to podman or docker.
func TestValidateRunRefusesWhatCannotReachArgvEnvOrPaths(t *testing.T) {
	s := newTestService(t)
	tests := []runEdit{
		{"NUL in the command", func(in *api.RunSubmit) { in.Command = []string{"python3\x00", "x"} }, "command"},
		{"NUL in an argument", func(in *api.RunSubmit) { in.Command = []string{"python3", "train.py", "--lr\x000.1"} }, "command"},
		{"NUL in an env value", func(in *api.RunSubmit) { in.Env = map[string]string{"A": "b\x00c"} }, "env"},
		{"NUL in an env name", func(in *api.RunSubmit) { in.Env = map[string]string{"A\x00": "b"} }, "env"},
		{"NUL in the experiment", func(in *api.RunSubmit) { in.Experiment = "exp\x00" }, "experiment"},
		{"NUL in python", func(in *api.RunSubmit) { in.Environment.Python = "/usr/bin/python3\x00" }, "environment.python"},
		{"newline in python", func(in *api.RunSubmit) { in.Environment.Python = "/usr/bin/python3\n" }, "environment.python"},
		{"NUL in the requirements", func(in *api.RunSubmit) { in.Environment.Requirements = "numpy\x00" }, "environment.requirements"},
		{"NUL in the image", func(in *api.RunSubmit) { in.Environment.Image = "python:3\x00" }, "environment.image"},
		{"an image that is an option", func(in *api.RunSubmit) { in.Environment.Image = "--privileged" }, "environment.image"},
		{"an image with a space", func(in *api.RunSubmit) { in.Environment.Image = "python -v /:/host" }, "environment.image"},
		{"an image", func(in *api.RunSubmit) { in.Environment.Image = "ghcr.io/org/img:1.2@sha256:0123abcd" }, ""},
		{"a python path", func(in *api.RunSubmit) { in.Environment.Python = "/opt/conda/bin/python3.12" }, ""},
		{"requirements", func(in *api.RunSubmit) { in.Environment.Requirements = "numpy==2.0\n# comment\n" }, ""},
		{"unicode arguments", func(in *api.RunSubmit) { in.Command = []string{"echo", "héllo wörld", ""} }, ""},
	}
	validateEdits(t, s, tests)
}
