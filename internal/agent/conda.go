package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/internal/agent/proc"
	"github.com/paddock-ml/paddock/internal/conda"
)

// shortHash is a short hex digest of s, for cache directory names.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:24]
}

// condaTools are the programs that build a conda environment, preferred
// first.
var condaTools = []string{"micromamba", "mamba", "conda"}

// condaEnv makes a run's conda environment ready and returns the
// directory whose bin/ goes first on PATH ("" when the node's python3 is
// used as it is):
//   - with micromamba, mamba or conda on the node, that tool builds the
//     environment from the file, once per content, user and tool;
//   - without, conda packages cannot be installed: the run fails naming
//     them; the node's python3 must meet the file's python version, and
//     the pip packages go into a venv (made once per content and reused).
func (a *Agent) condaEnv(ctx context.Context, text string, ship *shipper, sb sandbox) (string, error) {
	spec, err := conda.Parse(text)
	if err != nil {
		return "", err
	}
	env := a.iso.reachablePath(runEnv(nil), sb)
	path := getEnv(env, "PATH")
	for _, tool := range condaTools {
		if exe := lookIn(tool, path); exe != "" {
			return a.condaBuild(ctx, exe, text, env, ship, sb)
		}
	}
	if len(spec.Packages) > 0 {
		return "", fmt.Errorf("the conda environment asks for conda packages %s, which need micromamba, mamba or conda on the node, and none is on its PATH: install one there, or list them under pip: in the file to have them installed with pip into a venv",
			strings.Join(spec.Packages, ", "))
	}
	python := lookIn("python3", path)
	if python == "" {
		return "", fmt.Errorf("the conda environment needs python3 on this node's PATH (or micromamba, mamba or conda to provide one)")
	}
	version, err := pythonVersion(ctx, python)
	if err != nil {
		return "", err
	}
	if spec.Python != "" {
		if ok, _ := conda.PythonMatches(spec.Python, version); !ok {
			return "", fmt.Errorf("the conda environment asks for python%s, but this node's python3 (%s) is %s, and there is no micromamba, mamba or conda on the node to install another", spec.Python, python, version)
		}
	}
	ship.add("stderr", fmt.Sprintf("[paddock] no conda on this node: the environment's pip packages go into a venv of its python3 %s", version))
	if spec.Requirements() == "" {
		return "", nil // nothing to install: the node's python3 as it is
	}
	return a.venv(ctx, spec.Requirements(), ship, sb)
}

// pythonVersion asks an interpreter for its version (3.11.7).
func pythonVersion(ctx context.Context, python string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", "import platform; print(platform.python_version())").Output()
	if err != nil {
		return "", fmt.Errorf("asking %s for its version: %v", python, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// condaBuild builds an environment from a conda file with tool (its path),
// once per content, user and tool, in the run's sandbox; concurrent runs
// with the same file wait for one build. It returns the environment's
// prefix.
func (a *Agent) condaBuild(ctx context.Context, tool, text string, env []string, ship *shipper, sb sandbox) (string, error) {
	key := "conda-" + shortHash(tool+"\x00"+text+"\x00"+sb.user.name)
	dir := filepath.Join(a.cfg.WorkDir, "envs", key)
	prefix := filepath.Join(dir, "env")
	unlock, ready, done := a.lockEnv(key, dir, ship)
	defer unlock()
	if done {
		return prefix, nil
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	if a.iso.mode == isolateRoot {
		if err := os.Lchown(dir, int(sb.user.id.UID), int(sb.user.id.GID)); err != nil {
			return "", err
		}
	}
	file := filepath.Join(dir, "environment.yml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return "", err
	}
	if a.iso.mode == isolateRoot {
		os.Lchown(file, int(sb.user.id.UID), int(sb.user.id.GID))
	}
	name := filepath.Base(tool)
	ship.add("stderr", fmt.Sprintf("[paddock] building environment %s from the conda file with %s", key, name))
	args := []string{"env", "create", "--quiet", "-p", prefix, "-f", file}
	if name == "micromamba" {
		args = []string{"create", "--yes", "--quiet", "-r", filepath.Join(dir, "root"), "-p", prefix, "-f", file}
	}
	// The tool's caches go to the environment's directory, which the
	// run's user owns.
	env = setEnv(setEnv(env, "CONDA_PKGS_DIRS", filepath.Join(dir, "pkgs")), "HOME", dir)
	out := ship.writer("stderr")
	build := sb.withBinds(proc.Bind{Path: dir}, proc.Bind{Path: filepath.Dir(tool), ReadOnly: true})
	err := a.runTool(ctx, "env-"+key, build, proc.Spec{Path: tool, Args: args, Dir: dir, Env: env, Stdout: out, Stderr: out})
	out.flush()
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("%s could not build the conda environment (%v); the run's log has its output", name, err)
	}
	return prefix, os.WriteFile(ready, nil, 0o644)
}
