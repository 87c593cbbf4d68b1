package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// KillLeftover kills every process left in the cgroup of a process named
// name by an earlier agent that died, and removes that cgroup. An agent
// calls it at start for the attempts it finds it had running. Without
// cgroups there is nothing to find, and it returns nil.
func KillLeftover(name string) error {
	if err := validName(name); err != nil {
		return err
	}
	h := defaultHost()
	cg := &cgroup{v2: h.mode == modeV2}
	switch h.mode {
	case modeNone:
		return nil
	case modeV2:
		cg.dirs = []string{filepath.Join(h.root, parentGroup, name)}
		cg.membersFile = filepath.Join(cg.dirs[0], "cgroup.procs")
	default:
		for _, c := range []string{"pids", "cpu", "memory"} {
			cg.dirs = append(cg.dirs, filepath.Join(h.root, c, parentGroup, name))
		}
		cg.membersFile = filepath.Join(cg.dirs[0], "cgroup.procs")
	}
	existing := cg.dirs[:0]
	for _, d := range cg.dirs {
		if _, err := os.Stat(d); err == nil {
			existing = append(existing, d)
		}
	}
	cg.dirs = existing
	if len(cg.dirs) == 0 {
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		live := 0
		for _, pid := range cg.members() {
			if running(pid) {
				live++
			}
		}
		if live == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("proc: %d processes of %s survived SIGKILL", live, name)
		}
		cg.kill()
		signalMembers(cg, unix.SIGKILL)
		time.Sleep(10 * time.Millisecond)
	}
	if err := cg.remove(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
