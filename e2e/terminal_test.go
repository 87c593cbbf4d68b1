package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair: what a program writes to the
// second file is read from the first, and the program sees a terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var n uint32
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("TIOCGPTN: %v", e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("TIOCSPTLCK: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// termRun is a CLI command running with stdout and stderr on a terminal,
// as a person at a terminal runs it.
type termRun struct {
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	code int
}

// onTerminal starts the CLI on a pseudo-terminal; its output (stdout and
// stderr together, as a terminal shows them) is read as it comes.
func (e *env) onTerminal(args ...string) *termRun {
	t := e.t.(*testing.T)
	t.Helper()
	master, slave := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = e.environ()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	tr := &termRun{done: make(chan struct{})}
	read := make(chan struct{})
	go func() { // until the terminal's last writer is gone (EIO)
		defer close(read)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			tr.mu.Lock()
			tr.out.Write(buf[:n])
			tr.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		<-read
		master.Close()
		cancel()
		if ee, ok := err.(*exec.ExitError); ok {
			tr.code = ee.ExitCode()
		} else if err != nil {
			tr.code = -1
		}
		close(tr.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-tr.done
	})
	return tr
}

// output is what the terminal showed so far, with its \r\n line ends as \n.
func (tr *termRun) output() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return strings.ReplaceAll(tr.out.String(), "\r\n", "\n")
}

// wait waits for the command to end and returns its output and exit code.
func (tr *termRun) wait(t *testing.T, within time.Duration) (string, int) {
	t.Helper()
	select {
	case <-tr.done:
	case <-time.After(within):
		t.Fatalf("the command did not end in %s; it showed:\n%s", within, tr.output())
	}
	return tr.output(), tr.code
}

// A person waiting on a run sees why it waits and each change of that, on
// `run submit --stream`, `run wait` and `run logs -f`; `run wait` says how
// the run ended. A script (no terminal) gets only the outcome.
func TestWaitingSaysWhy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	e.ok("compute", "create", "instance", "box", "--vm-size", "STANDARD_D2_V2")
	e.ok("compute", "stop", "box")
	stopped := "Queued (instance box is stopped; start it with `paddock compute start box`)"

	stream := e.onTerminal("run", "submit", "--compute", "box", "--stream", "--", "sh", "-c", "echo streamed from box")
	waited := e.submit2("box", "--", "sh", "-c", "echo waited")
	followed := e.submit2("box", "--", "sh", "-c", "echo followed")
	wait := e.onTerminal("run", "wait", waited)
	logs := e.onTerminal("run", "logs", "-f", followed)
	for name, tr := range map[string]*termRun{"run submit --stream": stream, "run wait": wait, "run logs -f": logs} {
		eventually(t, 20*time.Second, name+" to say why the run waits", func() bool { return strings.Contains(tr.output(), stopped) })
	}
	e.ok("compute", "start", "box")

	out, code := stream.wait(t, 60*time.Second)
	if code != 0 || !strings.Contains(out, "streamed from box\n") || !strings.Contains(out, ": Running\n") {
		t.Errorf("run submit --stream on a terminal: exit %d\n%s", code, out)
	}
	out, code = wait.wait(t, 60*time.Second)
	if code != 0 || !strings.Contains(out, ": Running\n") || !strings.HasSuffix(out, "run "+waited+": Completed\n") {
		t.Errorf("run wait on a terminal: exit %d\n%s", code, out)
	}
	out, code = logs.wait(t, 60*time.Second)
	if code != 0 || !strings.Contains(out, "followed\n") {
		t.Errorf("run logs -f on a terminal: exit %d\n%s", code, out)
	}
	for name, out := range map[string]string{"stream": stream.output(), "wait": wait.output(), "logs": logs.output()} {
		// The reason changed once the instance was asked to start.
		if !strings.Contains(out, "(waiting for instance box to start)") && !strings.Contains(out, ": Starting") {
			t.Errorf("%s: no change after the start was shown:\n%s", name, out)
		}
	}

	// Scripts: the outcome only, nothing on stderr.
	if r := e.run("run", "wait", waited); r.code != 0 || r.stdout != "run "+waited+": Completed\n" || r.stderr != "" {
		t.Errorf("run wait without a terminal: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := e.run("run", "logs", "-f", followed); r.code != 0 || r.stdout != "followed\n" || r.stderr != "" {
		t.Errorf("run logs -f without a terminal: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}
