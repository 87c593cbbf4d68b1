package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/agent/proc"
)

func envMap(t *testing.T, env []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Errorf("malformed entry %q", kv)
		}
		if _, dup := m[k]; dup {
			t.Errorf("%s is set twice", k)
		}
		m[k] = v
	}
	return m
}

func TestRunEnv(t *testing.T) {
	t.Setenv("PADDOCK_NODE_TOKEN", "pdn_secret")
	t.Setenv("PADDOCK_SERVER", "http://agent-only")
	t.Setenv("PADDOCK_RUN_ID", "the-agent's-own")
	t.Setenv("MY_PADDOCK_SETTING", "kept")
	t.Setenv("AGENT_TEST_OVERRIDE", "from the agent")
	env := envMap(t, runEnv(map[string]string{
		"PADDOCK_RUN_ID":      "run-1",
		"PADDOCK_RUN_TOKEN":   "pdr_run-1_1_sig",
		"FOO":                 "bar",
		"AGENT_TEST_OVERRIDE": "from the run",
		"EMPTY":               "",
	}))
	for k, want := range map[string]string{
		"PADDOCK_RUN_ID":      "run-1",
		"PADDOCK_RUN_TOKEN":   "pdr_run-1_1_sig",
		"FOO":                 "bar",
		"AGENT_TEST_OVERRIDE": "from the run",
		"EMPTY":               "",
		"MY_PADDOCK_SETTING":  "kept",
		"PATH":                os.Getenv("PATH"),
	} {
		if got, ok := env[k]; !ok || got != want {
			t.Errorf("%s = %q (set %v), want %q", k, got, ok, want)
		}
	}
	for _, k := range []string{"PADDOCK_NODE_TOKEN", "PADDOCK_SERVER"} {
		if v, ok := env[k]; ok {
			t.Errorf("the agent's %s=%q leaked into the run", k, v)
		}
	}
}

func TestSetEnv(t *testing.T) {
	t.Parallel()
	env := []string{"A=1", "AB=2"}
	env = setEnv(env, "A", "x")
	env = setEnv(env, "B", "y")
	if want := []string{"A=x", "AB=2", "B=y"}; !slices.Equal(env, want) {
		t.Errorf("setEnv: %q, want %q", env, want)
	}
	if got := getEnv(env, "AB"); got != "2" {
		t.Errorf("getEnv(AB) = %q", got)
	}
	if got := getEnv(env, "C"); got != "" {
		t.Errorf("getEnv(C) = %q", got)
	}
}

func TestPythonShim(t *testing.T) {
	t.Parallel()
	a := &Agent{cfg: Config{WorkDir: t.TempDir()}, iso: &isolation{}}
	dir, err := a.pythonShim("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dir, filepath.Join(a.cfg.WorkDir, "bin")+string(filepath.Separator)) {
		t.Errorf("shim dir %s is not under the work dir's bin", dir)
	}
	for _, name := range []string{"python", "python3"} {
		target, err := os.Readlink(filepath.Join(dir, name))
		if err != nil || target != "/bin/sh" {
			t.Errorf("%s -> %q (%v), want /bin/sh", name, target, err)
		}
	}
	// The shim runs the interpreter.
	out, err := exec.Command(filepath.Join(dir, "python3"), "-c", "echo shimmed").Output()
	if err != nil || strings.TrimSpace(string(out)) != "shimmed" {
		t.Errorf("running the shim: %q, %v", out, err)
	}
	// Again: the same directory, still right.
	again, err := a.pythonShim("/bin/sh")
	if err != nil || again != dir {
		t.Errorf("second shim = %s, %v; want %s", again, err, dir)
	}
	// A link pointing elsewhere (an older shim) is replaced.
	os.Remove(filepath.Join(dir, "python"))
	os.Symlink("/nonexistent", filepath.Join(dir, "python"))
	if _, err := a.pythonShim("/bin/sh"); err != nil {
		t.Fatal(err)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "python")); target != "/bin/sh" {
		t.Errorf("stale link not replaced: python -> %q", target)
	}
	// Another interpreter gets another directory.
	other := filepath.Join(t.TempDir(), "python3.12")
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if d2, err := a.pythonShim(other); err != nil || d2 == dir {
		t.Errorf("shim for another interpreter = %s, %v", d2, err)
	}
	// A name on PATH is resolved.
	if _, err := exec.LookPath("sh"); err == nil {
		d3, err := a.pythonShim("sh")
		if err != nil {
			t.Fatalf("pythonShim(sh): %v", err)
		}
		if target, _ := os.Readlink(filepath.Join(d3, "python")); !filepath.IsAbs(target) {
			t.Errorf("shim for a name on PATH links to %q, want an absolute path", target)
		}
	}
}

func TestPythonShimRefuses(t *testing.T) {
	t.Parallel()
	a := &Agent{cfg: Config{WorkDir: t.TempDir()}, iso: &isolation{}}
	notExec := filepath.Join(t.TempDir(), "python")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, python, wantErr string
	}{
		{"missing path", "/nonexistent/bin/python3", "python interpreter /nonexistent/bin/python3 does not exist on this node or is not executable"},
		{"a directory", t.TempDir(), "does not exist on this node or is not executable"},
		{"not executable", notExec, "does not exist on this node or is not executable"},
		{"not on PATH", "python-that-does-not-exist-9", `python interpreter "python-that-does-not-exist-9" is not on this node's PATH`},
	}
	for _, tt := range tests {
		dir, err := a.pythonShim(tt.python)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: pythonShim(%q) = %q, %v; want an error containing %q", tt.name, tt.python, dir, err, tt.wantErr)
		}
	}
}

func TestPrepareEnvironmentPython(t *testing.T) {
	t.Parallel()
	a := &Agent{cfg: Config{WorkDir: t.TempDir()}, iso: &isolation{}}
	as := api.Assignment{RunID: "run-1", Attempt: 1, Environment: api.Environment{Python: "/bin/sh"}}
	prep, err := a.prepareEnvironment(context.Background(), as, t.TempDir(), []string{"PATH=/usr/bin:/bin", "X=1"}, []string{"python", "train.py"}, nil, sandbox{})
	if err != nil {
		t.Fatal(err)
	}
	env, cmd := prep.env, prep.cmd
	shim, _ := a.pythonShim("/bin/sh")
	if got := getEnv(env, "PATH"); got != shim+":/usr/bin:/bin" {
		t.Errorf("PATH = %q, want the shim first", got)
	}
	if !slices.Equal(cmd, []string{"python", "train.py"}) {
		t.Errorf("cmd = %q", cmd)
	}
	// No environment: unchanged.
	prep, err = a.prepareEnvironment(context.Background(), api.Assignment{}, t.TempDir(), []string{"PATH=/bin"}, []string{"true"}, nil, sandbox{})
	env, cmd = prep.env, prep.cmd
	if err != nil || !slices.Equal(env, []string{"PATH=/bin"}) || !slices.Equal(cmd, []string{"true"}) {
		t.Errorf("no environment: %q %q %v", env, cmd, err)
	}
}

// fakeEngines puts podman and/or docker scripts first on PATH and makes the
// agent look for an engine again. Not parallel: it changes PATH and the
// package's engine cache.
func fakeEngines(t *testing.T, scripts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	resetEngine := func() { engineOnce, enginePath, noEng = sync.Once{}, "", "" }
	resetEngine()
	t.Cleanup(resetEngine)
	return dir
}

func TestContainerCommand(t *testing.T) {
	as := api.Assignment{RunID: "run-1", Attempt: 1,
		Environment: api.Environment{Image: "pytorch/pytorch:2.5"},
		Resources:   api.Resources{Cores: 1.5, MemoryGB: 2},
		Env:         map[string]string{"PADDOCK_RUN_ID": "run-1", "FOO": "bar"}}
	cmd := []string{"python", "train.py", "--lr", "0.1"}

	t.Run("args", func(t *testing.T) {
		args := containerCommand("/usr/bin/podman", "paddock-run-1-1-r0", as, "/work/runs/run-1-1", cmd, &isolation{}, sandbox{})
		want := []string{"/usr/bin/podman", "run", "--rm", "--init", "--name", "paddock-run-1-1-r0", "--pull", "never", "--network", "host",
			"-v", "/work/runs/run-1-1:/workdir", "-w", "/workdir", "--cpus", "1.5", "--memory", "2147483648", "--memory-swap", "2147483648",
			"-e", "FOO", "-e", "PADDOCK_RUN_ID", "pytorch/pytorch:2.5"}
		if !slices.Equal(args, append(want, cmd...)) {
			t.Errorf("args = %q\nwant   %q", args, append(want, cmd...))
		}
	})
	t.Run("as the run's user", func(t *testing.T) {
		sb := sandbox{user: runUser{name: "pdk-ana", id: proc.User{UID: 1234, GID: 1235}}}
		args := containerCommand("podman", "c", as, "/w", cmd, &isolation{mode: isolateRoot}, sb)
		if i := slices.Index(args, "--user"); i < 0 || args[i+1] != "1234:1235" {
			t.Errorf("args %q, want --user 1234:1235", args)
		}
	})
	t.Run("no limits asked", func(t *testing.T) {
		plain := as
		plain.Resources, plain.Env = api.Resources{}, nil
		args := containerCommand("docker", "c", plain, "/w", []string{"true"}, &isolation{}, sandbox{})
		if slices.Contains(args, "--cpus") || slices.Contains(args, "--memory") || slices.Contains(args, "-e") {
			t.Errorf("args %q, want no --cpus, --memory or -e", args)
		}
	})
}

func TestContainerEngine(t *testing.T) {
	t.Run("podman first", func(t *testing.T) {
		dir := fakeEngines(t, map[string]string{"podman": "exit 0", "docker": "exit 0"})
		if engine, _ := containerEngine(); engine != filepath.Join(dir, "podman") {
			t.Errorf("engine %s, want podman", engine)
		}
	})
	t.Run("docker when podman is not usable", func(t *testing.T) {
		dir := fakeEngines(t, map[string]string{"podman": "echo 'cannot connect to podman'; exit 1", "docker": "exit 0"})
		if engine, _ := containerEngine(); engine != filepath.Join(dir, "docker") {
			t.Errorf("engine %s, want docker", engine)
		}
	})
	for _, tt := range []struct {
		name    string
		scripts map[string]string
		wantWhy string
	}{
		{"none installed", nil, `neither is installed`},
		{"none usable", map[string]string{
			"podman": "echo 'Error: cannot connect to Podman socket'; echo more; exit 125",
			"docker": "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2; exit 1"},
			`podman is installed but not usable (Error: cannot connect to Podman socket); ` +
				`docker is installed but not usable (Cannot connect to the Docker daemon at unix:///var/run/docker.sock.)`},
		{"docker's client details before its error", map[string]string{
			"docker": "printf 'Client:\\n Version:    28.2.2\\n Context:    default\\n\\nServer:\\nCannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\\n'; exit 1"},
			`docker is installed but not usable (Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fakeEngines(t, tt.scripts)
			if engine, why := containerEngine(); engine != "" || why != tt.wantWhy {
				t.Errorf("engine %q, why %q\nwant why %s", engine, why, tt.wantWhy)
			}
		})
	}
}

// A run that asks for GPUs and an image gets CUDA_VISIBLE_DEVICES passed
// into the container, but no GPU device: the container sees none.
func TestContainerCommandPassesGPUs(t *testing.T) {
	fakeEngines(t, map[string]string{"docker": "exit 0"})
	as := api.Assignment{RunID: "run-1", Attempt: 1, Environment: api.Environment{Image: "img"},
		Resources: api.Resources{Cores: 1, GPUs: 2}, GPUIndices: []int{2, 3},
		Env: map[string]string{"CUDA_VISIBLE_DEVICES": "2,3"}}
	args := containerCommand("docker", "c", as, "/w", []string{"true"}, &isolation{}, sandbox{})
	joined := strings.Join(args, " ")
	if !strings.Contains(joined, "--gpus") && !strings.Contains(joined, "--device") {
		t.Errorf("args %q give the container no GPU", args)
	}
}
