package proc

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// An agent that died leaves its run's processes behind; the next agent
// finds them by the cgroup name and kills them.
func TestKillLeftover(t *testing.T) {
	if mode := CgroupMode(); strings.HasPrefix(mode, "none") {
		t.Skip("no cgroups here: " + mode)
	}
	name := "leftover-test-" + time.Now().Format("150405.000000")
	p, err := Start(Spec{Name: name, Path: "sh", Args: []string{"-c", "sleep 1000 & setsid sleep 1000 & sleep 1000"}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(p.Alive()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	before := p.Alive()
	// Forget p, as a crashed agent would, and clean up by name.
	if err := KillLeftover(name); err != nil {
		t.Fatal(err)
	}
	for _, pid := range before {
		if running(pid) {
			t.Errorf("pid %d survived", pid)
		}
	}
	if out, _ := exec.Command("sh", "-c", "ls -d /sys/fs/cgroup/*/paddock/"+name+" /sys/fs/cgroup/paddock/"+name+" 2>/dev/null").Output(); len(out) > 0 {
		t.Errorf("cgroup dirs left: %s", out)
	}
	p.Cleanup()
	if err := KillLeftover("never-existed-" + name); err != nil {
		t.Errorf("a name with no cgroup: %v", err)
	}
}
