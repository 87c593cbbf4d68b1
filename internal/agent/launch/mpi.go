package launch

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Environment of an mpi run's processes that this package reads (the
// dispatcher sets them; PADDOCK_HOSTS only for more than one node).
const (
	envHosts = "PADDOCK_HOSTS"
	envToken = "PADDOCK_RUN_TOKEN"
	envPort  = "MASTER_PORT"
	// envDir is the run's working directory on each node, which mpirun
	// does not know beyond its own: it starts every process in its own
	// working directory, which on the other nodes does not exist (their
	// processes would start in $HOME). Set by MPIRun and Serve, each for
	// the processes of its node; see inDir.
	envDir = "PADDOCK_MPI_DIR"
)

// inDir wraps cmd so that it runs in the directory envDir names (where it
// is set), not where mpirun put it.
func inDir(cmd []string) []string {
	return append([]string{"/bin/sh", "-c", `cd "${` + envDir + `:-.}" && exec "$@"`, "sh"}, cmd...)
}

// withDir is the environment of a node's mpirun or orted: this process's,
// with envDir set to its working directory.
func withDir() []string {
	env := os.Environ()
	if wd, err := os.Getwd(); err == nil {
		env = append(env, envDir+"="+wd)
	}
	return env
}

// HostName is how mpirun names the node of rank r (> 0) to the rsh agent:
// the nodes of a run may share a host name (or a host), so they are told
// apart by rank.
func HostName(rank int) string { return "paddock-rank-" + strconv.Itoa(rank) }

// servePort is where the node of rank r serves mpirun's launch: just
// above the run's MASTER_PORT, one port per rank, so nodes sharing a host
// do not meet.
func servePort(rank int) (int, error) {
	base, err := strconv.Atoi(os.Getenv(envPort))
	if err != nil {
		return 0, fmt.Errorf("%s is not set to a port", envPort)
	}
	return base + 1 + rank, nil
}

// MPIArgs is the mpirun command line that starts cmd as nodes ×
// perNode processes, perNode on each node: rank 0's own through mpirun,
// the other nodes' through self (this binary) as the rsh agent. Each
// node's orted checks that the agent exists where it runs, so self is
// named as found on PATH when it is there ("paddock": the node agent puts
// the launcher first on the PATH of every node of an mpi run). The
// daemons are started from rank 0 only (no tree spawn).
func MPIArgs(self string, nodes, perNode int, cmd []string) []string {
	hosts := []string{"localhost:" + strconv.Itoa(perNode)}
	for r := 1; r < nodes; r++ {
		hosts = append(hosts, HostName(r)+":"+strconv.Itoa(perNode))
	}
	agent := self
	if p, err := exec.LookPath(filepath.Base(self)); err == nil && sameFile(p, self) {
		agent = filepath.Base(self)
	}
	args := []string{"mpirun", "-np", strconv.Itoa(nodes * perNode), "--host", strings.Join(hosts, ","),
		"--bind-to", "none", "--leave-session-attached", "--mca", "plm_rsh_agent", agent + " agent launch mpi-rsh", "--mca", "plm_rsh_no_tree_spawn", "1"}
	if os.Geteuid() == 0 { // OpenMPI refuses root unless told; runs as root only without isolation
		args = append(args, "--allow-run-as-root")
	}
	return append(append(args, "--"), inDir(cmd)...)
}

// sameFile reports whether two paths name one file.
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// MPIRun runs mpirun (see MPIArgs) and returns its exit code, passing
// SIGTERM and SIGINT on. Without mpirun on PATH it says so and returns 127.
func MPIRun(self string, nodes, perNode int, cmd []string, out, errOut io.Writer) int {
	args := MPIArgs(self, nodes, perNode, cmd)
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintln(errOut, "[paddock] distribution mpi needs OpenMPI's mpirun on this node's PATH, and there is none (Debian/Ubuntu: apt install openmpi-bin; in a container image: install OpenMPI in it)")
		return 127
	}
	c := exec.Command(path, args[1:]...)
	c.Env = withDir()
	c.Stdout, c.Stderr = out, errOut
	return runForwarding(c, errOut)
}

// runForwarding runs c to its end, passing SIGTERM and SIGINT on, and
// returns its exit code (128+signal when a signal ended it).
func runForwarding(c *exec.Cmd, errOut io.Writer) int {
	if err := c.Start(); err != nil {
		fmt.Fprintf(errOut, "[paddock] cannot start %s: %v\n", c.Path, err)
		return 127
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				c.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	c.Wait()
	close(done)
	return exitCode(c.ProcessState)
}

func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// Frames of the launch protocol: a type byte, a 4-byte big-endian
// length, the payload. The connection starts with one JSON line from Rsh
// (hello).
const (
	frameStdin    byte = 0
	frameStdout   byte = 1
	frameStderr   byte = 2
	frameExit     byte = 3 // payload: the exit code as 4 bytes
	frameStdinEOF byte = 4
	maxFrame           = 1 << 20
)

// hello is what Rsh sends first.
type hello struct {
	Auth    string `json:"auth"`    // hex SHA-256 of the run token
	Command string `json:"command"` // run with sh -c, as ssh does
}

func tokenDigest(tok string) string {
	sum := sha256.Sum256([]byte("paddock-mpi-launch\x00" + tok))
	return hex.EncodeToString(sum[:])
}

type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (f *frameWriter) send(typ byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(p)))
	if _, err := f.w.Write(h[:]); err != nil {
		return err
	}
	_, err := f.w.Write(p)
	return err
}

// stream copies r into frames of typ, ending with end (if not 255).
func (f *frameWriter) stream(typ byte, r io.Reader, end byte) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 && f.send(typ, buf[:n]) != nil {
			return
		}
		if err != nil {
			if end != 255 {
				f.send(end, nil)
			}
			return
		}
	}
}

func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("a frame of %d bytes is too large", n)
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return h[0], p, err
}

// Rsh is mpirun's rsh agent: args are what mpirun gives it (options it
// may pass as to ssh, a host named by HostName, the command words). It
// runs the command on that node through its Serve, relaying input, output
// and the exit code, which it returns.
func Rsh(args []string, in io.Reader, out, errOut io.Writer) int {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		args = args[1:] // ssh-style options (-x, -q …) mean nothing here
	}
	if len(args) < 2 {
		fmt.Fprintln(errOut, "[paddock] mpi-rsh: want a host and a command")
		return 255
	}
	host, command := args[0], strings.Join(args[1:], " ")
	rank, err := strconv.Atoi(strings.TrimPrefix(host, "paddock-rank-"))
	hosts := strings.Split(os.Getenv(envHosts), ",")
	if err != nil || !strings.HasPrefix(host, "paddock-rank-") || rank < 1 || rank >= len(hosts) {
		fmt.Fprintf(errOut, "[paddock] mpi-rsh: %q is not a node of this run (%s=%q)\n", host, envHosts, os.Getenv(envHosts))
		return 255
	}
	port, err := servePort(rank)
	if err != nil {
		fmt.Fprintln(errOut, "[paddock] mpi-rsh:", err)
		return 255
	}
	addr := net.JoinHostPort(hosts[rank], strconv.Itoa(port))
	var conn net.Conn
	deadline := time.Now().Add(2 * time.Minute) // the node may still be preparing
	for {
		conn, err = net.DialTimeout("tcp", addr, 10*time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		fmt.Fprintf(errOut, "[paddock] mpi-rsh: cannot reach rank %d's launcher at %s: %v\n", rank, addr, err)
		return 255
	}
	defer conn.Close()
	h, _ := json.Marshal(hello{Auth: tokenDigest(os.Getenv(envToken)), Command: command})
	if _, err := conn.Write(append(h, '\n')); err != nil {
		fmt.Fprintf(errOut, "[paddock] mpi-rsh: %v\n", err)
		return 255
	}
	fw := &frameWriter{w: conn}
	if in != nil {
		go fw.stream(frameStdin, in, frameStdinEOF)
	}
	r := bufio.NewReader(conn)
	for {
		typ, p, err := readFrame(r)
		if err != nil {
			fmt.Fprintf(errOut, "[paddock] mpi-rsh: the connection to rank %d ended without an exit code: %v\n", rank, err)
			return 255
		}
		switch typ {
		case frameStdout:
			out.Write(p)
		case frameStderr:
			errOut.Write(p)
		case frameExit:
			if len(p) == 4 {
				return int(int32(binary.BigEndian.Uint32(p)))
			}
			return 255
		}
	}
}

// Serve waits on this node's launch port (rank > 0) for mpirun's one
// launch, authenticated with the run's token, runs it with sh -c and
// returns its exit code. Connections that fail to authenticate are
// closed and it waits on.
func Serve(rank int, errOut io.Writer) int {
	port, err := servePort(rank)
	if err != nil {
		fmt.Fprintln(errOut, "[paddock] mpi launcher:", err)
		return 2
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		fmt.Fprintf(errOut, "[paddock] mpi launcher: cannot listen on port %d: %v\n", port, err)
		return 2
	}
	defer ln.Close()
	want := tokenDigest(os.Getenv(envToken))
	for {
		conn, err := ln.Accept()
		if err != nil {
			fmt.Fprintf(errOut, "[paddock] mpi launcher: %v\n", err)
			return 2
		}
		code, ok := serveOne(conn, want, errOut)
		conn.Close()
		if ok {
			return code
		}
	}
}

// serveOne handles one connection; ok is false when it was not mpirun's.
func serveOne(conn net.Conn, want string, errOut io.Writer) (int, bool) {
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	line, err := r.ReadBytes('\n')
	var h hello
	if err != nil || json.Unmarshal(line, &h) != nil ||
		subtle.ConstantTimeCompare([]byte(h.Auth), []byte(want)) != 1 || h.Command == "" {
		fmt.Fprintf(errOut, "[paddock] mpi launcher: refused a connection from %s\n", conn.RemoteAddr())
		return 0, false
	}
	conn.SetReadDeadline(time.Time{})
	fmt.Fprintf(errOut, "[paddock] mpi launcher: starting mpirun's daemon for this node (from %s): %s\n", conn.RemoteAddr(), h.Command)
	c := exec.Command("/bin/sh", "-c", h.Command)
	c.Env = withDir()
	stdin, _ := c.StdinPipe()
	stdout, _ := c.StdoutPipe()
	stderr, _ := c.StderrPipe()
	fw := &frameWriter{w: conn}
	if err := c.Start(); err != nil {
		fw.send(frameStderr, []byte(fmt.Sprintf("[paddock] mpi launcher: cannot start sh: %v\n", err)))
		exitFrame(fw, 127)
		return 127, true
	}
	// Input from mpirun; the connection closing (mpirun gone) stops it.
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		for {
			typ, p, err := readFrame(r)
			if err != nil {
				c.Process.Signal(syscall.SIGTERM)
				return
			}
			switch typ {
			case frameStdin:
				stdin.Write(p)
			case frameStdinEOF:
				stdin.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); fw.stream(frameStdout, stdout, 255) }()
	go func() { defer wg.Done(); fw.stream(frameStderr, stderr, 255) }()
	wg.Wait()
	c.Wait()
	code := exitCode(c.ProcessState)
	if code != 0 {
		fmt.Fprintf(errOut, "[paddock] mpi launcher: mpirun's daemon exited with code %d\n", code)
	}
	exitFrame(fw, code)
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
	}
	return code, true
}

func exitFrame(fw *frameWriter, code int) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(int32(code)))
	fw.send(frameExit, b[:]) // mpirun gone: nobody to tell
}
