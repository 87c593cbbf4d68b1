package agent

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/agent/proc"
	"github.com/paddock-ml/paddock/internal/version"
)

// launcher returns the path of a copy of this agent's binary that runs can
// execute (`paddock agent launch`, see internal/agent/launch), in a
// directory of its own under the work dir, made once per binary.
func (a *Agent) launcher() (string, error) {
	a.launcherOnce.Do(func() {
		a.launcherPath, a.launcherErr = a.makeLauncher()
	})
	return a.launcherPath, a.launcherErr
}

func (a *Agent) makeLauncher() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the agent's binary: %w", err)
	}
	fi, err := os.Stat(self)
	if err != nil {
		return "", err
	}
	key := fmt.Sprintf("%s-%d-%d", version.Version, fi.Size(), fi.ModTime().UnixNano())
	dir := filepath.Join(a.cfg.WorkDir, "bin", "launch-"+shortHash(key))
	dst := filepath.Join(dir, "paddock")
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	os.Chmod(dir, 0o755) // runs of other users execute it
	src, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(dir, ".paddock-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return dst, os.Rename(tmp.Name(), dst)
}

// containerLauncher is where the launcher is mounted in a run's container:
// the same path on every node, as mpirun's rsh agent needs.
const containerLauncher = "/opt/paddock/bin/paddock"

// launchCommand wraps a run's command for how it starts its processes:
// several per node (launch procs, each with its LOCAL_RANK and RANK), or
// through mpirun on rank 0 of an mpi run, the other nodes serving its
// launch (launch mpi-worker). It returns the command as it is for one
// process per node; otherwise also what the sandbox (or the container)
// must bind to run the launcher, and the directory to put first on PATH
// (mpirun's rsh agent is found there, by name, on every node).
func (a *Agent) launchCommand(as api.Assignment, cmd []string, inContainer bool) ([]string, []proc.Bind, string, error) {
	procs := max(as.ProcessCountPerNode, 1)
	mpi := as.Distribution == "mpi"
	if procs == 1 && !mpi {
		return cmd, nil, "", nil
	}
	real, err := a.launcher()
	if err != nil {
		return nil, nil, "", fmt.Errorf("preparing the launcher of the run's processes: %w", err)
	}
	self, binds := real, []proc.Bind{{Path: filepath.Dir(real), ReadOnly: true}}
	if inContainer {
		self = containerLauncher
		binds = []proc.Bind{{Path: filepath.Dir(containerLauncher), From: filepath.Dir(real), ReadOnly: true}}
	}
	path := ""
	if mpi {
		path = filepath.Dir(self)
	}
	nodes := max(len(as.Hosts), 1)
	switch {
	case mpi && as.NodeRank > 0:
		return []string{self, "agent", "launch", "mpi-worker", strconv.Itoa(as.NodeRank)}, binds, path, nil
	case mpi:
		return append([]string{self, "agent", "launch", "mpirun", strconv.Itoa(nodes), strconv.Itoa(procs), "--"}, cmd...), binds, path, nil
	}
	return append([]string{self, "agent", "launch", "procs", strconv.Itoa(procs), strconv.Itoa(as.NodeRank * procs), "--"}, cmd...), binds, path, nil
}
