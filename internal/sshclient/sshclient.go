// Package sshclient connects to hosts over SSH the way Paddock needs it:
// password or key authentication, trust-on-first-use host keys that are
// checked on every later connection, and errors that name the cause in
// words a user can act on.
package sshclient

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/paddock-ml/paddock/api"
	"golang.org/x/crypto/ssh"
)

// Target is where and how to connect.
type Target struct {
	Address    string
	Port       int
	User       string
	Password   string
	PrivateKey string // PEM
	Passphrase string
	// HostKey is the host key's SHA256 fingerprint recorded at attach; empty
	// on the first connection, which records it (trust on first use).
	HostKey string
	Timeout time.Duration
}

func (t Target) addr() string { return net.JoinHostPort(t.Address, strconv.Itoa(t.Port)) }

// Dial connects and authenticates. It returns the host key's fingerprint
// (to record on first use).
func Dial(ctx context.Context, t Target) (*ssh.Client, string, error) {
	var auth []ssh.AuthMethod
	switch {
	case t.PrivateKey != "":
		var signer ssh.Signer
		var err error
		if t.Passphrase != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(t.PrivateKey), []byte(t.Passphrase))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(t.PrivateKey))
		}
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			return nil, "", api.Invalid("private_key_passphrase", "the private key is encrypted: give its passphrase (--passphrase-file)")
		case err != nil && t.Passphrase != "":
			return nil, "", api.Invalid("private_key_passphrase", "the private key could not be decrypted with the passphrase given")
		case err != nil:
			return nil, "", api.Invalid("private_key", "private_key is not a private key OpenSSH can read")
		}
		auth = append(auth, ssh.PublicKeys(signer))
	case t.Password != "":
		auth = append(auth, ssh.Password(t.Password), ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
			answers := make([]string, len(qs))
			for i := range qs {
				answers[i] = t.Password
			}
			return answers, nil
		}))
	}
	var seen string
	cfg := &ssh.ClientConfig{
		User: t.User,
		Auth: auth,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			seen = ssh.FingerprintSHA256(key)
			if t.HostKey != "" && subtle.ConstantTimeCompare([]byte(seen), []byte(t.HostKey)) != 1 {
				return errHostKeyChanged
			}
			return nil
		},
		Timeout: t.Timeout,
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", t.addr())
	if err != nil {
		return nil, "", explain(t, err, "")
	}
	conn.SetDeadline(time.Now().Add(cfg.Timeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, t.addr(), cfg)
	if err != nil {
		conn.Close()
		return nil, "", explain(t, err, seen)
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), seen, nil
}

var errHostKeyChanged = errors.New("host key changed")

// explain turns a connection error into one sentence naming the cause.
func explain(t Target, err error, seen string) error {
	var nerr net.Error
	switch {
	case errors.Is(err, errHostKeyChanged):
		return api.Conflict("the host key of %s changed: it was %s when attached and is %s now; if the host was reinstalled, detach and attach it again", t.addr(), t.HostKey, seen)
	case errors.Is(err, syscall.ECONNREFUSED):
		return api.Unavailable("cannot connect to %s: connection refused (is sshd running, and is the port right?)", t.addr())
	case errors.As(err, &nerr) && nerr.Timeout():
		return api.Unavailable("cannot connect to %s: timed out (is the address right and reachable?)", t.addr())
	case strings.Contains(err.Error(), "unable to authenticate"):
		return api.Unavailable("authentication as %q at %s failed: check the user name and the password or key", t.User, t.addr())
	}
	return api.Unavailable("cannot connect to %s over SSH: %v", t.addr(), err)
}

// Run runs a command on the host with stdin and returns its output and
// exit code.
func Run(c *ssh.Client, cmd string, stdin io.Reader) (stdout, stderr string, code int, err error) {
	s, err := c.NewSession()
	if err != nil {
		return "", "", -1, err
	}
	defer s.Close()
	var o, e bytes.Buffer
	s.Stdout, s.Stderr, s.Stdin = &o, &e, stdin
	err = s.Run(cmd)
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return o.String(), e.String(), ee.ExitStatus(), nil
	}
	if err != nil {
		return o.String(), e.String(), -1, err
	}
	return o.String(), e.String(), 0, nil
}

// MustRun runs a command and fails unless it exits 0.
func MustRun(c *ssh.Client, cmd string, stdin io.Reader) (string, error) {
	out, errOut, code, err := Run(c, cmd, stdin)
	if err != nil {
		return out, err
	}
	if code != 0 {
		return out, fmt.Errorf("%q exited with %d: %s", cmd, code, strings.TrimSpace(errOut))
	}
	return out, nil
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
