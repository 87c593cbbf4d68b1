package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
)

func condaAgent(t *testing.T) (*Agent, *shipper) {
	t.Helper()
	a := &Agent{cfg: Config{WorkDir: t.TempDir()}, iso: &isolation{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return a, newShipper(a, api.AttemptRef{RunID: "run-1", Attempt: 1}, 0)
}

func logText(s *shipper) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, l := range s.lines {
		b.WriteString(l.Text + "\n")
	}
	return b.String()
}

// Without conda on the node: conda packages fail the run naming them; the
// python version must be the node's; pip packages go into a venv.
func TestCondaEnvWithoutConda(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3")
	}
	version, err := pythonVersion(t.Context(), python)
	if err != nil {
		t.Fatal(err)
	}
	major := version[:strings.LastIndex(version, ".")]
	t.Setenv("PATH", filepath.Dir(python)+":/usr/bin:/bin")
	a, ship := condaAgent(t)
	_, err = a.condaEnv(t.Context(), "dependencies:\n  - python="+major+"\n  - scikit-learn\n  - numpy=1.26\n", ship, sandbox{})
	if err == nil || !strings.Contains(err.Error(), "conda packages scikit-learn, numpy=1.26") || !strings.Contains(err.Error(), "pip:") {
		t.Errorf("conda packages without conda: %v", err)
	}
	_, err = a.condaEnv(t.Context(), "dependencies:\n  - python=2.7\n", ship, sandbox{})
	if err == nil || !strings.Contains(err.Error(), "python=2.7") || !strings.Contains(err.Error(), version) {
		t.Errorf("a python the node does not have: %v", err)
	}
	prefix, err := a.condaEnv(t.Context(), "name: x\ndependencies:\n  - python="+major+"\n  - pip\n", ship, sandbox{})
	if err != nil || prefix != "" {
		t.Errorf("no packages at all: %q, %v; want the node's python3 as it is", prefix, err)
	}
	if !strings.Contains(logText(ship), "no conda on this node") {
		t.Errorf("the log does not say how the environment was made: %q", logText(ship))
	}
}

// With micromamba (or conda) on the node, it builds the environment from
// the file, once. The micromamba here is a FAKE (a shell script that
// records its arguments and makes the prefix): a real one fetches packages
// from conda-forge, which tests cannot reach.
func TestCondaEnvWithMicromamba(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls")
	script := `#!/bin/sh
echo "$@" >> ` + calls + `
while [ $# -gt 0 ]; do [ "$1" = -p ] && prefix=$2; shift; done
mkdir -p "$prefix/bin" && echo built
`
	if err := os.WriteFile(filepath.Join(bin, "micromamba"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	a, ship := condaAgent(t)
	text := "channels: [conda-forge]\ndependencies:\n  - python=2.7\n  - scikit-learn\n"
	for range 2 {
		prefix, err := a.condaEnv(t.Context(), text, ship, sandbox{})
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(filepath.Join(prefix, "bin")); err != nil || !fi.IsDir() {
			t.Fatalf("prefix %s has no bin/: %v", prefix, err)
		}
	}
	data, _ := os.ReadFile(calls)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "create --yes --quiet -r ") || !strings.Contains(lines[0], " -f ") {
		t.Fatalf("micromamba was called %q; want one create", lines)
	}
	file := strings.Fields(lines[0])[len(strings.Fields(lines[0]))-1]
	if got, _ := os.ReadFile(file); string(got) != text {
		t.Errorf("the file micromamba read = %q", got)
	}
	if log := logText(ship); !strings.Contains(log, "with micromamba") || !strings.Contains(log, "reusing environment") {
		t.Errorf("log %q", log)
	}
	// prepareEnvironment puts it first on PATH, as CONDA_PREFIX.
	prep, err := a.prepareEnvironment(context.Background(), api.Assignment{Environment: api.Environment{Conda: text}}, t.TempDir(),
		[]string{"PATH=/bin"}, []string{"python", "train.py"}, ship, sandbox{})
	if err != nil {
		t.Fatal(err)
	}
	if p := getEnv(prep.env, "CONDA_PREFIX"); p == "" || getEnv(prep.env, "PATH") != filepath.Join(p, "bin")+":/bin" {
		t.Errorf("env %q", prep.env)
	}
}

// Several processes per node and mpi runs start through the launcher, a
// copy of the agent's binary the run can execute.
func TestLaunchCommand(t *testing.T) {
	a, _ := condaAgent(t)
	cmd := []string{"python", "train.py"}
	if got, binds, path, err := a.launchCommand(api.Assignment{ProcessCountPerNode: 1}, cmd, false); err != nil || !slices.Equal(got, cmd) || binds != nil || path != "" {
		t.Fatalf("one process: %q %v %q %v", got, binds, path, err)
	}
	self, err := a.launcher()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(self); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("launcher %s: %v %v", self, fi, err)
	}
	for _, c := range []struct {
		as   api.Assignment
		want []string
	}{
		{api.Assignment{ProcessCountPerNode: 4, NodeRank: 1, Distribution: "pytorch"}, []string{self, "agent", "launch", "procs", "4", "4", "--", "python", "train.py"}},
		{api.Assignment{ProcessCountPerNode: 2, Distribution: "mpi", Hosts: []string{"a", "b"}}, []string{self, "agent", "launch", "mpirun", "2", "2", "--", "python", "train.py"}},
		{api.Assignment{ProcessCountPerNode: 2, Distribution: "mpi", NodeRank: 1, Hosts: []string{"a", "b"}}, []string{self, "agent", "launch", "mpi-worker", "1"}},
		{api.Assignment{Distribution: "mpi"}, []string{self, "agent", "launch", "mpirun", "1", "1", "--", "python", "train.py"}},
	} {
		got, binds, path, err := a.launchCommand(c.as, cmd, false)
		if err != nil || !slices.Equal(got, c.want) || len(binds) != 1 || binds[0].Path != filepath.Dir(self) || !binds[0].ReadOnly {
			t.Errorf("%+v: %q %v %v; want %q", c.as, got, binds, err, c.want)
		}
		if mpi := c.as.Distribution == "mpi"; mpi != (path == filepath.Dir(self)) || !mpi && path != "" {
			t.Errorf("%+v: PATH gets %q", c.as, path)
		}
	}
	// In a container, the launcher is mounted at the same path on every node.
	got, binds, path, err := a.launchCommand(api.Assignment{ProcessCountPerNode: 2, Distribution: "mpi"}, cmd, true)
	if err != nil || got[0] != containerLauncher || path != filepath.Dir(containerLauncher) || binds[0].Source() != filepath.Dir(self) {
		t.Fatalf("in a container: %q %v %q %v", got, binds, path, err)
	}
	args := containerCommand("podman", "c", api.Assignment{Environment: api.Environment{Image: "img"}}, "/w", []string{"true"}, &isolation{}, sandbox{}, binds...)
	if !strings.Contains(strings.Join(args, " "), "-v "+filepath.Dir(self)+":/opt/paddock/bin:ro") {
		t.Errorf("the launcher is not mounted into the container: %q", args)
	}
}
