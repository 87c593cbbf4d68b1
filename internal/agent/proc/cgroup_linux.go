package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/internal/backoff"
	"golang.org/x/sys/unix"
)

// parentGroup is the cgroup under which every process's cgroup is created.
const parentGroup = "paddock"

// cfsPeriod is the CPU bandwidth period in microseconds.
const cfsPeriod = 100000

var errCgroupInUse = errors.New("proc: cgroup name in use")

type cgroupVersion int

const (
	modeNone cgroupVersion = iota
	modeV1
	modeV2
)

func (v cgroupVersion) String() string {
	switch v {
	case modeV1:
		return "v1"
	case modeV2:
		return "v2"
	}
	return "none"
}

// host describes how this host's cgroups can be used.
type host struct {
	root   string // where the hierarchy is mounted, normally /sys/fs/cgroup
	mode   cgroupVersion
	reason string // why not, with modeNone
}

var defaultHost = sync.OnceValue(func() *host { return detectHost("/sys/fs/cgroup") })

func cgroupMode() string {
	h := defaultHost()
	if h.mode == modeNone {
		return "none: " + h.reason
	}
	return h.mode.String()
}

// detectHost finds a usable cgroup v2 hierarchy at root, or else a cgroup v1
// pids hierarchy at root/pids (v1's cgroup that lists every descendant).
func detectHost(root string) *host {
	none := func(format string, args ...any) *host {
		return &host{root: root, mode: modeNone, reason: fmt.Sprintf(format, args...)}
	}
	if os.Geteuid() != 0 {
		return none("not running as root")
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		// Every v2 cgroup lists its members; controllers are needed only
		// for limits, and are checked when a limit asks for one.
		if err := checkMount(root, unix.CGROUP2_SUPER_MAGIC); err != nil {
			return none("cgroup v2: %v", err)
		}
		return &host{root: root, mode: modeV2}
	}
	pids := filepath.Join(root, "pids")
	if _, err := os.Stat(filepath.Join(pids, "cgroup.procs")); err != nil {
		return none("no cgroup v2 at %s and no cgroup v1 pids controller at %s", root, pids)
	}
	if err := checkMount(pids, unix.CGROUP_SUPER_MAGIC); err != nil {
		return none("cgroup v1: %v", err)
	}
	return &host{root: root, mode: modeV1}
}

// checkMount checks that dir is a writable mount of a cgroup file system.
func checkMount(dir string, magic int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err
	}
	if int64(st.Type) != magic {
		return fmt.Errorf("%s is not a cgroup file system", dir)
	}
	if st.Flags&unix.ST_RDONLY != 0 {
		return fmt.Errorf("%s is mounted read-only", dir)
	}
	return nil
}

// cgroup is one process's cgroup: a directory per v1 controller, or one v2
// directory.
type cgroup struct {
	v2          bool
	dirs        []string // created, in the order to join
	membersFile string   // the cgroup.procs that lists every process of the tree
}

func (c *cgroup) procsFiles() []string {
	files := make([]string, len(c.dirs))
	for i, d := range c.dirs {
		files[i] = filepath.Join(d, "cgroup.procs")
	}
	return files
}

// create makes the cgroup for name with the limits; on failure it removes
// what it made. A cgroup of that name with processes in it is errCgroupInUse.
func (h *host) create(name string, cores float64, mem int64) (cg *cgroup, err error) {
	cg = &cgroup{v2: h.mode == modeV2}
	defer func() {
		if err != nil {
			cg.remove()
			cg = nil
		}
	}()
	var limits []limitFile
	if h.mode == modeV2 {
		var ctrls []string
		if cores > 0 {
			ctrls = append(ctrls, "cpu")
			limits = append(limits, limitFile{"cpu.max", fmt.Sprintf("%d %d", cpuQuota(cores), cfsPeriod), true})
		}
		if mem > 0 {
			ctrls = append(ctrls, "memory")
			limits = append(limits,
				limitFile{"memory.max", strconv.FormatInt(mem, 10), true},
				limitFile{"memory.swap.max", "0", false},
				limitFile{"memory.oom.group", "1", false})
		}
		parent := filepath.Join(h.root, parentGroup)
		if err := enableControllers(h.root, ctrls); err != nil {
			return cg, err
		}
		if err := mkdirIfMissing(parent); err != nil {
			return cg, err
		}
		if err := enableControllers(parent, ctrls); err != nil {
			return cg, err
		}
		dir, err := makeGroup(filepath.Join(parent, name))
		if err != nil {
			return cg, err
		}
		cg.dirs = append(cg.dirs, dir)
		cg.membersFile = filepath.Join(dir, "cgroup.procs")
		return cg, writeLimits(dir, limits)
	}

	type ctrl struct {
		name   string
		limits []limitFile
	}
	ctrls := []ctrl{{name: "pids"}}
	if cores > 0 {
		ctrls = append(ctrls, ctrl{"cpu", []limitFile{
			{"cpu.cfs_period_us", strconv.Itoa(cfsPeriod), true},
			{"cpu.cfs_quota_us", strconv.FormatInt(cpuQuota(cores), 10), true},
		}})
	}
	if mem > 0 {
		v := strconv.FormatInt(mem, 10)
		ctrls = append(ctrls, ctrl{"memory", []limitFile{
			{"memory.limit_in_bytes", v, true},
			{"memory.memsw.limit_in_bytes", v, false}, // present with swap accounting
		}})
	}
	for _, c := range ctrls {
		croot := filepath.Join(h.root, c.name)
		if _, err := os.Stat(filepath.Join(croot, "cgroup.procs")); err != nil {
			return cg, fmt.Errorf("cgroup v1: no %s controller at %s", c.name, croot)
		}
		if err := mkdirIfMissing(filepath.Join(croot, parentGroup)); err != nil {
			return cg, err
		}
		dir, err := makeGroup(filepath.Join(croot, parentGroup, name))
		if err != nil {
			return cg, err
		}
		cg.dirs = append(cg.dirs, dir)
		if c.name == "pids" {
			cg.membersFile = filepath.Join(dir, "cgroup.procs")
		}
		if err := writeLimits(dir, c.limits); err != nil {
			return cg, err
		}
	}
	return cg, nil
}

type limitFile struct {
	name, value string
	required    bool // else skipped where the file does not exist
}

func writeLimits(dir string, limits []limitFile) error {
	for _, l := range limits {
		path := filepath.Join(dir, l.name)
		err := writeFile(path, l.value)
		if err != nil && (l.required || !errors.Is(err, os.ErrNotExist)) {
			return fmt.Errorf("cgroup: set %s to %s: %w", path, l.value, err)
		}
	}
	return nil
}

// cpuQuota is the CFS quota in microseconds per cfsPeriod for cores.
func cpuQuota(cores float64) int64 {
	return max(int64(cores*cfsPeriod), 1000) // the kernel's minimum is 1 ms
}

func mkdirIfMissing(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("cgroup: %w", err)
	}
	return nil
}

// makeGroup creates the cgroup directory dir afresh. A leftover empty one
// (from a crashed agent) is replaced so that it has default settings; one
// with processes is errCgroupInUse.
func makeGroup(dir string) (string, error) {
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, os.ErrExist) {
		if pids := readPids(filepath.Join(dir, "cgroup.procs")); len(pids) > 0 {
			return "", fmt.Errorf("%w: %s has processes %v", errCgroupInUse, dir, pids)
		}
		if err = removeGroup(dir); err == nil {
			err = os.Mkdir(dir, 0o755)
		}
	}
	if err != nil {
		return "", fmt.Errorf("cgroup: %w", err)
	}
	return dir, nil
}

// enableControllers enables ctrls for the children of the v2 cgroup dir.
func enableControllers(dir string, ctrls []string) error {
	if len(ctrls) == 0 {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("cgroup v2: %w", err)
	}
	have := strings.Fields(string(b))
	var add []string
	for _, c := range ctrls {
		if !slices.Contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	path := filepath.Join(dir, "cgroup.subtree_control")
	if err := writeFile(path, strings.Join(add, " ")); err != nil {
		return fmt.Errorf("cgroup v2: enable %s in %s: %w", strings.Join(add, " "), path, err)
	}
	return nil
}

// kill writes cgroup.kill where the kernel has it (v2, Linux 5.14+).
func (c *cgroup) kill() {
	if c.v2 {
		writeFile(filepath.Join(c.dirs[0], "cgroup.kill"), "1")
	}
}

// oomKills is how many processes of the cgroup the kernel killed for
// reaching its memory limit: memory.events (v2) or memory.oom_control (v1,
// Linux 4.13+) count them.
func (c *cgroup) oomKills() int {
	for _, d := range c.dirs {
		for _, f := range []string{"memory.events", "memory.oom_control"} {
			data, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
					n, _ := strconv.Atoi(strings.TrimSpace(v))
					return n
				}
			}
		}
	}
	return 0
}

// members returns the pids listed in the cgroup (zombies may be among them).
func (c *cgroup) members() []int {
	if c.membersFile == "" {
		return nil
	}
	return readPids(c.membersFile)
}

func readPids(file string) []int {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// remove removes the cgroup's directories; missing ones are fine.
func (c *cgroup) remove() error {
	var errs []error
	for _, d := range slices.Backward(c.dirs) {
		errs = append(errs, removeGroup(d))
	}
	return errors.Join(errs...)
}

// removeGroup removes a cgroup directory, retrying for a moment while the
// kernel still counts processes that have just exited.
func removeGroup(dir string) error {
	deadline := time.Now().Add(time.Second)
	for wait := backoff.New(time.Millisecond, 50*time.Millisecond); ; {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY || time.Now().After(deadline) {
			return fmt.Errorf("cgroup: remove %s: %w", dir, err)
		}
		time.Sleep(wait.Next())
	}
}

// writeFile writes value to an existing cgroup file in one write.
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
