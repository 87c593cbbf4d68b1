package sshclient

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"golang.org/x/crypto/ssh"
)

// server is an in-process SSH server with a fresh host key that accepts
// one password.
func server(t *testing.T) (port int, fingerprint string) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
		if string(pw) == "right" {
			return nil, nil
		}
		return nil, errors.New("no")
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				defer sc.Close()
				go ssh.DiscardRequests(reqs)
				for nc := range chans {
					nc.Reject(ssh.Prohibited, "no sessions in this test")
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, ssh.FingerprintSHA256(signer.PublicKey())
}

func TestDialRecordsAndChecksHostKey(t *testing.T) {
	port, fp := server(t)
	target := Target{Address: "127.0.0.1", Port: port, User: "u", Password: "right"}
	c, seen, err := Dial(t.Context(), target)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if seen != fp {
		t.Fatalf("recorded %s, want %s", seen, fp)
	}
	target.HostKey = seen
	if c, _, err := Dial(t.Context(), target); err != nil {
		t.Fatalf("the same host key was refused: %v", err)
	} else {
		c.Close()
	}
	// Another server on another port plays the reinstalled host.
	other, _ := server(t)
	target.Port = other
	_, _, err = Dial(t.Context(), target)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "host key of 127.0.0.1") || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("a changed host key: %v", err)
	}
}

func TestDialErrorsNameTheCause(t *testing.T) {
	port, _ := server(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	tests := []struct {
		target Target
		code   api.Code
		want   string
	}{
		{Target{Address: "127.0.0.1", Port: port, User: "u", Password: "wrong"}, api.CodeUnavailable, `authentication as "u"`},
		{Target{Address: "127.0.0.1", Port: closed, User: "u", Password: "right"}, api.CodeUnavailable, "connection refused"},
		{Target{Address: "127.0.0.1", Port: port, User: "u", PrivateKey: "not a key"}, api.CodeInvalid, "private_key is not a private key"},
	}
	for _, tc := range tests {
		_, _, err := Dial(t.Context(), tc.target)
		var e *api.Error
		if !errors.As(err, &e) || e.Code != tc.code || !strings.Contains(e.Message, tc.want) {
			t.Errorf("%+v: %v, want %s containing %q", tc.target.Port, err, tc.code, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := Quote("it's"); got != `'it'\''s'` {
		t.Fatalf("Quote = %s", got)
	}
}
