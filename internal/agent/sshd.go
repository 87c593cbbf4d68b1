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
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// sshServer is the SSH endpoint of a compute instance, built into the
// agent: it accepts the holders of the authorized keys and runs their
// commands (exec) or a shell with the instance's home directory. Sessions
// have pipes, not a terminal: a pty request is accepted and ignored.
type sshServer struct {
	ln       net.Listener
	cfg      *ssh.ServerConfig
	home     string
	log      *slog.Logger
	sessions atomic.Int32
}

// startSSH listens on addr. The host key is kept in hostKeyFile (made on
// first use) so clients see the same key after a restart.
func startSSH(addr, hostKeyFile, authorizedKeysFile, home string, log *slog.Logger) (*sshServer, error) {
	signer, err := loadOrMakeHostKey(hostKeyFile)
	if err != nil {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	data, err := os.ReadFile(authorizedKeysFile)
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
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			for _, k := range allowed {
				if string(k) == string(key.Marshal()) {
					return &ssh.Permissions{}, nil
				}
			}
			return nil, errors.New("key not authorized")
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &sshServer{ln: ln, cfg: cfg, home: home, log: log}
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

// Close stops accepting connections.
func (s *sshServer) Close() { s.ln.Close() }

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
	cmd := exec.Command("/bin/sh", args...)
	cmd.Dir, cmd.Env = s.home, env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	io.WriteString(ch.Stderr(), "paddock: "+err.Error()+"\n")
	return 127
}
