package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paddock-ml/paddock/internal/agent/proc"
	"golang.org/x/crypto/ssh"
)

// sshServer is the SSH endpoint of a compute instance, built into the
// agent: it accepts the instance's owner, logging in under their Paddock
// user name with an authorized key, and runs their commands (exec) or a
// shell in the instance's home directory, as the owner's OS user and in
// the same sandbox as their runs. Sessions have pipes, not a terminal: a
// pty request is accepted and ignored. Processes a session leaves running
// go on until the instance stops.
type sshServer struct {
	a        *Agent
	ln       net.Listener
	cfg      *ssh.ServerConfig
	home     string
	log      *slog.Logger
	sessions atomic.Int32
	seq      atomic.Int64

	mu    sync.Mutex
	procs map[*proc.Process]bool // sessions' trees, stopped with the server
}

// startSSH listens on the agent's SSH address. The host key is kept in its
// file (made on first use) so clients see the same key after a restart.
func startSSH(a *Agent) (*sshServer, error) {
	cfg := a.cfg
	signer, err := loadOrMakeHostKey(cfg.SSHHostKeyFile)
	if err != nil {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	data, err := os.ReadFile(cfg.SSHAuthorizedKeysFile)
	if err != nil {
		return nil, fmt.Errorf("ssh authorized keys: %w", err)
	}
	var allowed [][]byte
	for rest := data; len(rest) > 0; {
		key, _, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			break
		}
		allowed = append(allowed, key.Marshal())
		rest = r
	}
	if len(allowed) == 0 {
		return nil, errors.New("no authorized key: SSH access needs admin_user_ssh_key")
	}
	sc := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if cfg.Owner != "" && meta.User() != cfg.Owner {
				return nil, fmt.Errorf("log in as %s, the instance's user", cfg.Owner)
			}
			for _, k := range allowed {
				if string(k) == string(key.Marshal()) {
					return &ssh.Permissions{}, nil
				}
			}
			return nil, errors.New("key not authorized")
		},
	}
	sc.AddHostKey(signer)
	ln, err := net.Listen("tcp", cfg.SSHListen)
	if err != nil {
		return nil, err
	}
	s := &sshServer{a: a, ln: ln, cfg: sc, home: cfg.Home, log: cfg.Log, procs: map[*proc.Process]bool{}}
	go s.serve()
	return s, nil
}

func loadOrMakeHostKey(path string) (ssh.Signer, error) {
	if data, err := os.ReadFile(path); err == nil {
		return ssh.ParsePrivateKey(data)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "paddock instance host key")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

// Addr is where the server listens.
func (s *sshServer) Addr() string { return s.ln.Addr().String() }

// Sessions is how many sessions are open.
func (s *sshServer) Sessions() int { return int(s.sessions.Load()) }

// Close stops accepting connections and ends what sessions left running.
func (s *sshServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.procs {
		p.Stop(time.Second)
		p.Cleanup()
	}
}

func (s *sshServer) serve() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.handle(conn)
	}
}

func (s *sshServer) handle(c net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		c.Close()
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions are served")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go s.session(ch, creqs)
	}
}

// session serves one session channel: env, pty-req, exec and shell.
func (s *sshServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	s.sessions.Add(1)
	defer s.sessions.Add(-1)
	defer ch.Close()
	env := []string{"HOME=" + s.home, "PATH=" + os.Getenv("PATH"), "SHELL=/bin/sh"}
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) == nil && !strings.HasPrefix(kv.Name, "PADDOCK_") {
				env = append(env, kv.Name+"="+kv.Value)
			}
			req.Reply(true, nil)
		case "pty-req":
			req.Reply(true, nil)
		case "exec", "shell":
			args := []string{"-i"}
			if req.Type == "exec" {
				var p struct{ Command string }
				if err := ssh.Unmarshal(req.Payload, &p); err != nil {
					req.Reply(false, nil)
					continue
				}
				args = []string{"-c", p.Command}
			}
			req.Reply(true, nil)
			code := s.run(ch, env, args)
			status := make([]byte, 4)
			binary.BigEndian.PutUint32(status, uint32(code))
			ch.SendRequest("exit-status", false, status)
			return
		default:
			req.Reply(false, nil)
		}
	}
}

func (s *sshServer) run(ch ssh.Channel, env, args []string) int {
	sb, err := s.a.iso.sandbox(s.a.cfg.Owner, s.home)
	if err == nil {
		spec := proc.Spec{Name: fmt.Sprintf("ssh-%d-%d", os.Getpid(), s.seq.Add(1)), Path: "/bin/sh", Args: args,
			Dir: s.home, Env: env, Stdin: ch, Stdout: ch, Stderr: ch.Stderr()}
		sb.apply(&spec, s.a.iso.mode)
		var p *proc.Process
		if p, err = proc.Start(spec); err == nil {
			s.mu.Lock()
			s.procs[p] = true
			s.mu.Unlock()
			code, _ := p.Wait()
			s.reap(p)
			return code
		}
	}
	io.WriteString(ch.Stderr(), "paddock: "+err.Error()+"\n")
	return 127
}

// reap cleans up a session's tree once it is gone; one whose processes
// live on is kept, and stopped with the server.
func (s *sshServer) reap(p *proc.Process) {
	if len(p.Alive()) > 0 {
		return
	}
	if err := p.Cleanup(); err != nil {
		return
	}
	s.mu.Lock()
	delete(s.procs, p)
	s.mu.Unlock()
}
