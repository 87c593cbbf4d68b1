package localagent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/paddock-ml/paddock/internal/clientconfig"
)

// Files in an agent's directory.
const (
	tokenFile  = "token"
	serverFile = "server-url"
	caFile     = "ca.pem"
	pidFile    = "agent.pid"
	logFile    = "agent.log"
)

// AgentDir is the directory of one agent process on this host: its token,
// the server URL and CA it reads, its pid file, its log and its work dir. Both the
// local target's agent and the local provider's cluster nodes use one.
type AgentDir string

func (d AgentDir) path(name string) string { return filepath.Join(string(d), name) }

// Token returns the agent's token, making one with newToken on first use.
func (d AgentDir) Token(newToken func() string) (string, error) {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return "", err
	}
	data, err := os.ReadFile(d.path(tokenFile))
	if err == nil && len(strings.TrimSpace(string(data))) > 0 {
		return strings.TrimSpace(string(data)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tok := newToken()
	return tok, clientconfig.WriteFileAtomic(d.path(tokenFile), []byte(tok+"\n"), 0o600)
}

// SetServer writes the URL the agent connects to; a running agent re-reads
// it whenever it cannot reach the server.
func (d AgentDir) SetServer(url string) error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return err
	}
	return clientconfig.WriteFileAtomic(d.path(serverFile), []byte(url+"\n"), 0o600)
}

// SetCA writes the CA certificate (PEM) the agent pins for an https server
// URL, or removes it (nil: the system's roots); a running agent re-reads
// it with the URL.
func (d AgentDir) SetCA(pem []byte) error {
	if len(pem) == 0 {
		if err := os.Remove(d.path(caFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return err
	}
	return clientconfig.WriteFileAtomic(d.path(caFile), pem, 0o600)
}

// AlivePID returns the pid in the pid file if that process is a paddock
// agent using this directory (not a recycled pid), else 0.
func (d AgentDir) AlivePID() int {
	data, err := os.ReadFile(d.path(pidFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 || zombie(pid) {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0
	}
	args := strings.Split(string(cmdline), "\x00")
	if len(args) < 2 || args[1] != "agent" || !strings.Contains(string(cmdline), string(d)) {
		return 0
	}
	return pid
}

// Flag returns the value of a --NAME VALUE flag on the running agent's
// command line, or "" when the agent is not running or has no such flag.
func (d AgentDir) Flag(name string) string {
	pid := d.AlivePID()
	if pid == 0 {
		return ""
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// Spawn starts the agent in its own session, so it outlives the server.
func (d AgentDir) Spawn(extra ...string) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(d.path(logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	args := append([]string{"agent",
		"--server-file", d.path(serverFile),
		"--ca-file", d.path(caFile),
		"--token-file", d.path(tokenFile),
		"--work-dir", d.path("work"),
		"--pid-file", d.path(pidFile),
	}, extra...)
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting an agent: %w", err)
	}
	// The pid file is the agent's own; write it now too so an adoption
	// check right after Spawn finds the process.
	os.WriteFile(d.path(pidFile), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600)
	go cmd.Wait() // reap it if it exits while this server runs
	return cmd.Process.Pid, nil
}

// Log is the agent's log file.
func (d AgentDir) Log() string { return d.path(logFile) }

// Stop ends the agent: SIGTERM (it stops its runs and reports), then
// SIGKILL after grace. It returns when the process is gone.
func (d AgentDir) Stop(grace time.Duration) {
	pid := d.AlivePID()
	if pid == 0 {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100 && alive(pid); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Kill ends the agent at once with SIGKILL, as a crash or a preemption
// would; its runs' processes are left for the next agent to clean up.
func (d AgentDir) Kill() {
	if pid := d.AlivePID(); pid != 0 {
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 200 && alive(pid); i++ {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil && !zombie(pid) }

func zombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(data), ')')
	return i > 0 && i+2 < len(data) && data[i+2] == 'Z'
}
