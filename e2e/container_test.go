package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// The container tests run --image runs through a real podman (runc). No
// registry is reachable here, so they build their image from this host's
// files: a shell, a few tools and Python 3 with its standard library, plus
// a module and a file that only the image has.

var (
	imageOnce sync.Once
	imageName = fmt.Sprintf("localhost/paddock-e2e-%d:py", os.Getpid())
	imageConf string // a containers.conf for this host, see needPodman
	imageErr  error
)

// imageFiles are copied into the image with the libraries they need.
var imageFiles = []string{"/bin/sh", "/usr/bin/python3", "/bin/cat", "/bin/sleep", "/usr/bin/id", "/bin/ls", "/bin/echo"}

// needPodman builds the test image once and returns the environment the
// server needs: podman's default ulimits exceed this host's hard limits,
// which runc may not raise, so a containers.conf sets them to what the
// host allows.
func needPodman(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("podman is missing; scripts/deps.sh installs it")
		}
		t.Skip("podman is not installed (apt-get install podman runc; scripts/deps.sh does it as root)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the container tests run podman as root, as the agent does when it is root")
	}
	imageOnce.Do(func() { imageErr = buildImage() })
	if imageErr != nil {
		t.Fatalf("building the test image: %v", imageErr)
	}
	return []string{"CONTAINERS_CONF=" + imageConf}
}

func buildImage() error {
	dir, err := os.MkdirTemp("", "paddock-e2e-image")
	if err != nil {
		return err
	}
	atExit = append(atExit, func() {
		exec.Command("podman", "rmi", "--force", imageName).Run()
		os.RemoveAll(dir)
	})
	root := filepath.Join(dir, "root")
	python, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		return err
	}
	for _, d := range []string{"usr/bin", "usr/lib", "etc", "tmp", "proc", "sys", "dev", "workdir"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	os.Symlink("usr/bin", filepath.Join(root, "bin"))
	// Each file goes where the host names it (the loader at /lib64/...),
	// its content followed through links.
	copyIn := func(src string) error {
		dst := filepath.Join(root, src)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		return exec.Command("cp", "-L", src, dst).Run()
	}
	for _, f := range append(imageFiles, python) {
		if err := copyIn(f); err != nil {
			return fmt.Errorf("copying %s: %w", f, err)
		}
		out, _ := exec.Command("ldd", f).Output()
		for _, field := range strings.Fields(string(out)) {
			if strings.HasPrefix(field, "/") {
				if err := copyIn(field); err != nil {
					return fmt.Errorf("copying %s: %w", field, err)
				}
			}
		}
	}
	stdlib := filepath.Join("/usr/lib", filepath.Base(python))
	if out, err := exec.Command("cp", "-a", stdlib, filepath.Join(root, "usr/lib")+"/").CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %v %s", stdlib, err, out)
	}
	os.RemoveAll(filepath.Join(root, stdlib, "test"))
	// Python's ssl module loads OpenSSL, which ldd of python3 does not name.
	mods, _ := filepath.Glob(filepath.Join(stdlib, "lib-dynload", "_ssl*.so"))
	hashlib, _ := filepath.Glob(filepath.Join(stdlib, "lib-dynload", "_hashlib*.so"))
	for _, m := range append(mods, hashlib...) {
		out, _ := exec.Command("ldd", m).Output()
		for _, field := range strings.Fields(string(out)) {
			if strings.HasPrefix(field, "/") {
				if err := copyIn(field); err != nil {
					return fmt.Errorf("copying %s: %w", field, err)
				}
			}
		}
	}
	if err := os.WriteFile(filepath.Join(root, stdlib, "paddock_image_marker.py"), []byte("WHERE = 'inside the test image'\n"), 0o644); err != nil {
		return err
	}
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644)
	imp := exec.Command("sh", "-c", "tar -C "+root+" -c . | podman import -q - "+imageName)
	if out, err := imp.CombinedOutput(); err != nil {
		return fmt.Errorf("podman import: %v %s", err, out)
	}
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	imageConf = filepath.Join(dir, "containers.conf")
	return os.WriteFile(imageConf, []byte(fmt.Sprintf("[containers]\ndefault_ulimits = [\"nofile=%d:%d\", \"nproc=4096:4096\"]\n", lim.Max, lim.Max)), 0o644)
}

// A run in an image: its Python is the image's, its logs and outputs come
// back, its cores and memory are the container's limits, and it runs as
// the run's user.
func TestContainerRun(t *testing.T) {
	extra := needPodman(t)
	e := newEnv(t)
	e.extra = extra
	e.up()
	src := filepath.Join(e.home, "src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "train.py", `import os, sys, paddock_image_marker
print("python", paddock_image_marker.WHERE, sys.version_info[0])
print("memory", open("/sys/fs/cgroup/memory/memory.limit_in_bytes").read().strip())
print("cpu", open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read().strip(), open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read().strip())
print("uid", os.getuid())
os.makedirs("outputs", exist_ok=True)
open("outputs/model.txt", "w").write("weights from the container")
`)
	r := e.run("run", "submit", "--compute", "local", "--image", imageName, "--source", src, "--cores", "0.5",
		"--memory-gb", "0.25", "--stream", "--", "python3", "train.py")
	if r.code != 0 {
		t.Fatalf("submit: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"python inside the test image 3", "memory 268435456", "cpu 50000 100000"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the log lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "uid 0\n") {
		t.Errorf("the container ran as root:\n%s", r.stdout)
	}
	runs := decodeJSON[[]api.Run](t, e.ok("run", "list", "-o", "json"))
	dl := filepath.Join(e.home, "dl")
	e.ok("run", "download", runs[0].ID, "--to", dl)
	if b, _ := os.ReadFile(filepath.Join(dl, "model.txt")); string(b) != "weights from the container" {
		t.Errorf("outputs: %q", b)
	}
}

// Cancel stops the container, not only the engine's client: here one
// that ignores SIGTERM, so it must be killed after the grace period.
func TestContainerCancel(t *testing.T) {
	extra := needPodman(t)
	e := newEnv(t)
	e.extra = extra
	e.up()
	marker := fmt.Sprintf("paddock-container-%d", time.Now().UnixNano())
	id := e.submit("--image", imageName, "--", "python3", "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)", marker)
	eventually(t, 30*time.Second, "the container to run", func() bool { return len(pidsWith(marker)) > 0 })
	start := time.Now()
	e.ok("run", "cancel", id)
	if r := e.show(id); r.Status != api.RunCanceled {
		t.Errorf("status %s", r.Status)
	}
	if took := time.Since(start); took > 25*time.Second {
		t.Errorf("cancel took %s", took)
	}
	eventually(t, 10*time.Second, "the container's processes to be gone", func() bool { return len(pidsWith(marker)) == 0 })
	if out, _ := exec.Command("podman", "ps", "-a", "--filter", "name=paddock-"+id, "--format", "{{.Names}}").Output(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("containers left: %s", out)
	}
}

// An image that is not on the node and cannot be pulled fails the run
// with reason ImageUnavailable and the engine's words.
func TestContainerMissingImage(t *testing.T) {
	extra := needPodman(t)
	e := newEnv(t)
	e.extra = extra
	e.up()
	id := e.submit("--image", "localhost/paddock-no-such-image:1", "--", "true")
	r := e.waitRun(id)
	if r.Status != api.RunFailed || r.StatusReason != "ImageUnavailable" || !strings.Contains(r.Error, "paddock-no-such-image") {
		t.Errorf("run: %s %q %q", r.Status, r.StatusReason, r.Error)
	}
}
