package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/agent/proc"
)

// prepared is a run's command, ready to start.
type prepared struct {
	env, cmd []string
	// binds are paths the command needs besides the run's own (an
	// environment, a python shim), read-only.
	binds []proc.Bind
	// unsandboxed commands run as the agent's user: the container engine,
	// which isolates the run itself.
	unsandboxed bool
	// stop, when set, stops what the command started outside its process
	// tree (a container, which lives under the engine's monitor), giving it
	// grace to exit; the agent calls it before it stops the tree, and once
	// more when the command has ended.
	stop func(grace time.Duration)
}

// errImage says a run's image is not on the node and could not be pulled.
type errImage struct{ msg string }

func (e errImage) Error() string { return e.msg }

// prepareEnvironment makes the run's environment ready and returns the
// environment variables and command to run:
//   - python: an existing interpreter is put first on PATH as python and python3;
//   - requirements: a venv made once per content hash and user, and reused;
//   - conda: an environment built by conda where the node has it, else a
//     venv of the file's pip packages (see condaEnv);
//   - image: the command runs in a container with podman or docker (or
//     directly, when the agent itself runs in that image: a pod's);
//   - none: the node's python3, as it is.
func (a *Agent) prepareEnvironment(ctx context.Context, as api.Assignment, dir string, env, cmd []string, ship *shipper, sb sandbox) (prepared, error) {
	e := as.Environment
	// A run asking for the image the agent itself runs in (a Kubernetes
	// pod's) runs here directly, not in a container of its own.
	container := e.Image != "" && e.Image != a.cfg.Image
	cmd, launch, launchPath, err := a.launchCommand(as, cmd, container)
	if err != nil {
		return prepared{}, err
	}
	if launchPath != "" && !container {
		env = setEnv(env, "PATH", launchPath+":"+getEnv(env, "PATH"))
	}
	switch {
	case e.Python != "":
		bin, err := a.pythonShim(e.Python)
		if err != nil {
			return prepared{}, err
		}
		return prepared{env: setEnv(env, "PATH", bin+":"+getEnv(env, "PATH")), cmd: cmd,
			binds: append(launch, proc.Bind{Path: bin, ReadOnly: true})}, nil
	case e.Requirements != "":
		venv, err := a.venv(ctx, e.Requirements, ship, sb)
		if err != nil {
			return prepared{}, err
		}
		env = setEnv(env, "VIRTUAL_ENV", venv)
		return prepared{env: setEnv(env, "PATH", filepath.Join(venv, "bin")+":"+getEnv(env, "PATH")), cmd: cmd,
			binds: append(launch, proc.Bind{Path: venv, ReadOnly: true})}, nil
	case e.Conda != "":
		prefix, err := a.condaEnv(ctx, e.Conda, ship, sb)
		if err != nil || prefix == "" {
			return prepared{env: env, cmd: cmd, binds: launch}, err
		}
		envVar := "CONDA_PREFIX"
		if _, err := os.Stat(filepath.Join(prefix, "pyvenv.cfg")); err == nil {
			envVar = "VIRTUAL_ENV" // pip packages in a venv: no conda on the node
		}
		env = setEnv(env, envVar, prefix)
		return prepared{env: setEnv(env, "PATH", filepath.Join(prefix, "bin")+":"+getEnv(env, "PATH")), cmd: cmd,
			binds: append(launch, proc.Bind{Path: prefix, ReadOnly: true})}, nil
	case container:
		engine, why := containerEngine()
		if engine == "" {
			return prepared{}, fmt.Errorf("image %q needs podman or docker on this node: %s", e.Image, why)
		}
		if err := ensureImage(ctx, engine, e.Image, ship); err != nil {
			return prepared{}, err
		}
		name := "paddock-" + attemptName(as)
		cmd := containerCommand(engine, name, as, dir, cmd, a.iso, sb, launch...)
		return prepared{env: env, cmd: cmd, unsandboxed: true, stop: func(grace time.Duration) {
			stopContainer(engine, name, grace)
		}}, nil
	}
	return prepared{env: env, cmd: cmd, binds: launch}, nil
}

// lockEnv takes the lock of the cached environment key in dir (runs with
// the same one wait for one build) and says whether it is built already
// (saying so to the run's log); ready is the marker to write once it is.
func (a *Agent) lockEnv(key, dir string, ship *shipper) (unlock func(), ready string, done bool) {
	lock, _ := a.envLocks.LoadOrStore(key, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	ready = filepath.Join(dir, ".paddock-ready")
	if _, err := os.Stat(ready); err == nil {
		ship.add("stderr", "[paddock] reusing environment "+key)
		done = true
	}
	return lock.(*sync.Mutex).Unlock, ready, done
}

// pythonShim makes a directory whose python and python3 are the given
// interpreter.
func (a *Agent) pythonShim(python string) (string, error) {
	if !filepath.IsAbs(python) {
		p, err := exec.LookPath(python)
		if err != nil {
			return "", fmt.Errorf("python interpreter %q is not on this node's PATH", python)
		}
		python = p
	}
	if fi, err := os.Stat(python); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("python interpreter %s does not exist on this node or is not executable", python)
	}
	sum := sha256.Sum256([]byte(python))
	dir := filepath.Join(a.cfg.WorkDir, "bin", hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, name := range []string{"python", "python3"} {
		link := filepath.Join(dir, name)
		if target, err := os.Readlink(link); err == nil && target == python {
			continue
		}
		os.Remove(link)
		if err := os.Symlink(python, link); err != nil && !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	return dir, nil
}

// venv returns a virtual environment with the requirements installed,
// building it once per content hash and user (a user's build runs that
// user's code, so no other user's runs load it). The build runs in the
// run's sandbox. Concurrent runs with the same requirements wait for one
// build.
func (a *Agent) venv(ctx context.Context, requirements string, ship *shipper, sb sandbox) (string, error) {
	// The node's python3 as the run's user finds it (not a tool of the
	// agent's user that the run's cannot use).
	env := a.iso.reachablePath(runEnv(nil), sb)
	python := lookIn("python3", getEnv(env, "PATH"))
	if python == "" {
		return "", errors.New("requirements environments need python3 on this node's PATH")
	}
	key := shortHash(python + "\x00" + requirements + "\x00" + sb.user.name)
	dir := filepath.Join(a.cfg.WorkDir, "envs", key)
	unlock, ready, done := a.lockEnv(key, dir, ship)
	defer unlock()
	if done {
		return dir, nil
	}
	os.RemoveAll(dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	if a.iso.mode == isolateRoot {
		if err := os.Lchown(dir, int(sb.user.id.UID), int(sb.user.id.GID)); err != nil {
			return "", err
		}
	}
	ship.add("stderr", "[paddock] building environment "+key+" from the requirements")
	out := ship.writer("stderr")
	build := sb.withBinds(proc.Bind{Path: dir})
	run := func(name string, args ...string) error {
		defer out.flush()
		return a.runTool(ctx, "env-"+key, build, proc.Spec{Path: name, Args: args, Dir: dir, Env: env, Stdout: out, Stderr: out})
	}
	if err := run(python, "-m", "venv", dir); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("creating a venv with %s: %v", python, err)
	}
	req := filepath.Join(dir, "requirements.txt")
	if err := os.WriteFile(req, []byte(requirements), 0o644); err != nil {
		return "", err
	}
	if err := run(filepath.Join(dir, "bin", "pip"), "install", "--disable-pip-version-check", "--no-input", "-r", req); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("installing the requirements failed (%v); the run's log has pip's output", err)
	}
	return dir, os.WriteFile(ready, nil, 0o644)
}

// lookIn finds an executable name in a PATH list, or "".
func lookIn(name, pathList string) string {
	for _, d := range filepath.SplitList(pathList) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// runTool runs a helper command of a run (an environment build) in the
// run's sandbox, to its end; it is stopped when ctx ends.
func (a *Agent) runTool(ctx context.Context, name string, sb sandbox, spec proc.Spec) error {
	spec.Name = name
	sb.apply(&spec, a.iso.mode)
	p, err := proc.Start(spec)
	if err != nil {
		return err
	}
	defer p.Cleanup()
	done := make(chan int, 1)
	go func() {
		code, _ := p.Wait()
		done <- code
	}()
	var code int
	select {
	case code = <-done:
		p.Stop(0)
	case <-ctx.Done():
		p.Stop(a.cfg.KillGrace)
		return ctx.Err()
	}
	if code != 0 {
		return fmt.Errorf("%s exited with code %d", filepath.Base(spec.Path), code)
	}
	return nil
}

// containerCommand wraps cmd to run in the image with podman or docker,
// as the container name, with the working directory mounted at /workdir
// (the image is on the node: see ensureImage). The engine runs as the
// agent's user; with separate OS users, the container's processes run as
// the run's user. Cores and memory become the container's limits.
func containerCommand(engine, name string, as api.Assignment, dir string, cmd []string, iso *isolation, sb sandbox, ro ...proc.Bind) []string {
	// --init: the command is not PID 1, so SIGTERM reaches it.
	args := []string{engine, "run", "--rm", "--init", "--name", name, "--pull", "never", "--network", "host",
		"-v", dir + ":/workdir", "-w", "/workdir"}
	for _, b := range ro { // the launcher of the run's processes
		args = append(args, "-v", b.Source()+":"+b.Path+":ro")
	}
	if ca := as.Env[RunCAEnv]; ca != "" {
		args = append(args, "-v", ca+":"+ca+":ro") // the server's CA, at the path the run is given
	}
	if iso.mode == isolateRoot {
		args = append(args, "--user", fmt.Sprintf("%d:%d", sb.user.id.UID, sb.user.id.GID))
	}
	if as.Resources.Cores > 0 {
		args = append(args, "--cpus", strconv.FormatFloat(as.Resources.Cores, 'f', -1, 64))
	}
	if as.Resources.MemoryGB > 0 {
		mem := strconv.FormatInt(int64(as.Resources.MemoryGB*(1<<30)), 10)
		args = append(args, "--memory", mem, "--memory-swap", mem)
	}
	if len(as.GPUIndices) > 0 {
		if filepath.Base(engine) == "docker" {
			args = append(args, "--gpus", `"device=`+joinInts(as.GPUIndices)+`"`)
		} else {
			for _, i := range as.GPUIndices { // podman: the NVIDIA CDI devices
				args = append(args, "--device", "nvidia.com/gpu="+strconv.Itoa(i))
			}
		}
	}
	keys := make([]string, 0, len(as.Env))
	for k := range as.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-e", k)
	}
	args = append(args, as.Environment.Image)
	return append(args, cmd...)
}

// ensureImage makes sure the image is on the node, pulling it (with the
// engine's output in the run's log) when it is not.
func ensureImage(ctx context.Context, engine, image string, ship *shipper) error {
	if exec.CommandContext(ctx, engine, "image", "inspect", image).Run() == nil {
		return nil
	}
	ship.add("stderr", "[paddock] pulling image "+image)
	out, err := exec.CommandContext(ctx, engine, "pull", image).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		if l != "" {
			ship.add("stderr", l)
		}
	}
	if err != nil {
		return errImage{fmt.Sprintf("image %q is not on this node and could not be pulled: %s", image, lines[len(lines)-1])}
	}
	return nil
}

// stopContainer stops a run's container (SIGTERM, SIGKILL after grace)
// and removes it; one that is gone already is fine.
func stopContainer(engine, name string, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace+30*time.Second)
	defer cancel()
	secs := strconv.Itoa(int(grace.Round(time.Second) / time.Second))
	exec.CommandContext(ctx, engine, "stop", "--time", secs, name).Run()
	exec.CommandContext(ctx, engine, "rm", "--force", name).Run()
}

// detect reports this node's resources.
func detect(cfg Config) api.AgentHello {
	h := api.AgentHello{Cores: cfg.Cores, MemoryGB: cfg.MemoryGB, Address: cfg.Address}
	h.Hostname, _ = os.Hostname()
	if h.Address == "" {
		h.Address = h.Hostname
	}
	if h.Cores == 0 {
		h.Cores = float64(numCPU())
	}
	if h.MemoryGB == 0 {
		h.MemoryGB = memTotalGB()
	}
	h.GPUs = detectGPUs()
	return h
}

func memTotalGB() float64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return float64(int(kb/(1<<20)*10)) / 10
		}
	}
	return 0
}

var (
	engineOnce        sync.Once
	enginePath, noEng string
)

// containerEngine finds a container engine that works (a docker client
// without a daemon does not), once per agent.
func containerEngine() (string, string) {
	engineOnce.Do(func() {
		var found []string
		for _, e := range []string{"podman", "docker"} {
			p, err := exec.LookPath(e)
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := exec.CommandContext(ctx, p, "info").CombinedOutput()
			cancel()
			if err == nil {
				enginePath = p
				return
			}
			found = append(found, fmt.Sprintf("%s is installed but not usable (%s)", e, engineProblem(string(out))))
		}
		noEng = "neither is installed"
		if len(found) > 0 {
			noEng = strings.Join(found, "; ")
		}
	})
	return enginePath, noEng
}

// engineProblem picks from an engine's failed `info` output the line that
// says what is wrong: docker prints its client's details first ("Client:",
// its version...) and the daemon error at the end.
func engineProblem(out string) string {
	var last string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		l := strings.ToLower(line)
		if strings.Contains(l, "error") || strings.Contains(l, "cannot") || strings.Contains(l, "denied") || strings.Contains(l, "not ") {
			return line
		}
		last = line
	}
	if last == "" {
		return "its info command failed without a message"
	}
	return last
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
