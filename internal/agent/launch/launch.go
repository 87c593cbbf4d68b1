// Package launch starts a run's processes from inside its sandbox, where
// the node agent runs its own binary as `paddock agent launch ...`:
//
//   - Procs starts a command several times on one node, each process with
//     its LOCAL_RANK and RANK (process_count_per_node > 1), prefixes their
//     output lines with their rank, and stops them all when one fails.
//   - MPIRun, on rank 0 of an mpi run, starts the command through OpenMPI's
//     mpirun over every node of the run. mpirun reaches the other nodes
//     with Rsh, its "rsh agent", which connects to Serve on each of them.
//   - Serve, on the other nodes of an mpi run, waits for mpirun's one
//     launch (OpenMPI's orted), runs it in the run's sandbox and relays its
//     input, output and exit status, then exits with it.
//
// Rsh and Serve authenticate each other with the run's token, which only
// the run's processes hold.
package launch

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Grace is how long the other processes have after SIGTERM when one has
// failed, before SIGKILL.
var Grace = 10 * time.Second

// Procs runs cmd count times, process i with LOCAL_RANK=i and
// RANK=rankBase+i, and returns the exit code: 0 when all exit 0, else the
// first failure's (the others are stopped then). SIGTERM and SIGINT are
// passed on. Output lines are written to out and errOut prefixed with
// "[rank R] ".
func Procs(count, rankBase int, cmd []string, out, errOut io.Writer) int {
	if count < 1 || len(cmd) == 0 {
		fmt.Fprintln(errOut, "[paddock] launch procs: needs a count of at least 1 and a command")
		return 2
	}
	var mu sync.Mutex // one line at a time on each stream
	children := make([]*exec.Cmd, count)
	var flush []func()
	for i := range count {
		rank := rankBase + i
		c := exec.Command(cmd[0], cmd[1:]...)
		c.Env = append(os.Environ(), "LOCAL_RANK="+strconv.Itoa(i), "RANK="+strconv.Itoa(rank))
		prefix := fmt.Sprintf("[rank %d] ", rank)
		o, e := &prefixed{w: out, prefix: prefix, mu: &mu}, &prefixed{w: errOut, prefix: prefix, mu: &mu}
		c.Stdout, c.Stderr, c.Stdin = o, e, nil
		// Each in a process group of its own, signalled as a whole, so what
		// it started goes with it; its output ends with it.
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		c.WaitDelay = 2 * time.Second
		flush = append(flush, o.flush, e.flush)
		if err := c.Start(); err != nil {
			fmt.Fprintf(errOut, "[paddock] cannot start %q for rank %d: %v\n", cmd[0], rank, err)
			stopAll(children[:i], Grace)
			return 127
		}
		children[i] = c
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	type exit struct{ i, code int }
	exits := make(chan exit, count)
	for i, c := range children {
		go func() { c.Wait(); exits <- exit{i, c.ProcessState.ExitCode()} }()
	}
	code := 0
	for left := count; left > 0; {
		select {
		case s := <-sigs:
			for _, c := range children {
				signalGroup(c, s.(syscall.Signal))
			}
		case e := <-exits:
			left--
			if e.code != 0 && code == 0 {
				code = e.code
				if code < 0 { // killed by a signal
					code = 128 + int(children[e.i].ProcessState.Sys().(syscall.WaitStatus).Signal())
				}
				fmt.Fprintf(errOut, "[paddock] rank %d exited with code %d; stopping the other processes\n", rankBase+e.i, code)
				go stopAll(children, Grace)
			}
		}
	}
	for _, f := range flush {
		f()
	}
	return code
}

// stopAll sends SIGTERM to every process's group and SIGKILL after grace.
func stopAll(cs []*exec.Cmd, grace time.Duration) {
	for _, c := range cs {
		signalGroup(c, syscall.SIGTERM)
	}
	time.Sleep(grace)
	for _, c := range cs {
		signalGroup(c, syscall.SIGKILL)
	}
}

// signalGroup signals a child's process group (its pid: see Setpgid).
func signalGroup(c *exec.Cmd, sig syscall.Signal) {
	if c != nil && c.Process != nil {
		syscall.Kill(-c.Process.Pid, sig) // ESRCH once the group is gone: nothing to do
	}
}

// prefixed writes whole lines to w, each after prefix; mu serialises the
// lines of every writer sharing w's stream.
type prefixed struct {
	w      io.Writer
	prefix string
	mu     *sync.Mutex
	buf    []byte
}

func (p *prefixed) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.line(p.buf[:i+1])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixed) line(l []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := bufio.NewWriter(p.w)
	w.WriteString(p.prefix)
	w.Write(l)
	w.Flush()
}

// flush writes what is left without a newline.
func (p *prefixed) flush() {
	if len(p.buf) > 0 {
		p.line(append(p.buf, '\n'))
		p.buf = nil
	}
}
