package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
)

// Plain HTTP is allowed on loopback only, unless --insecure-listen; TLS
// flags that do not go together are refused naming the flag. None of it
// listens.
func TestCheckListen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		o     Options
		field string // "" when allowed
		want  string
	}{
		{Options{Listen: "127.0.0.1:8765"}, "", ""},
		{Options{Listen: "localhost:0"}, "", ""},
		{Options{Listen: "[::1]:0"}, "", ""},
		{Options{Listen: "127.0.0.2:0"}, "", ""},
		{Options{Listen: "0.0.0.0:8765"}, "listen", "--listen 0.0.0.0:8765 is not a loopback address and plain HTTP there sends tokens unencrypted: serve HTTPS with --tls (or --tls-cert), or pass --insecure-listen"},
		{Options{Listen: ":8765"}, "listen", "--insecure-listen"},
		{Options{Listen: "[::]:0"}, "listen", "--insecure-listen"},
		{Options{Listen: "192.0.2.7:80"}, "listen", "--insecure-listen"},
		{Options{Listen: "0.0.0.0:8765", InsecureListen: true}, "", ""},
		{Options{Listen: "0.0.0.0:8765", TLS: true}, "", ""},
		{Options{Listen: "0.0.0.0:8765", TLSCertFile: "c", TLSKeyFile: "k"}, "", ""},
		{Options{Listen: "8765"}, "listen", "must be host:port"},
		{Options{Listen: "127.0.0.1:0", TLSCertFile: "c"}, "tls-key", "--tls-cert needs --tls-key"},
		{Options{Listen: "127.0.0.1:0", TLSKeyFile: "k"}, "tls-cert", "--tls-key needs --tls-cert"},
		{Options{Listen: "127.0.0.1:0", TLS: true, TLSCAFile: "ca"}, "tls-ca", "--tls-ca names the CA of a certificate given with --tls-cert"},
	} {
		err := checkListen(tc.o)
		if tc.field == "" {
			if err != nil {
				t.Errorf("%+v: %v; want it allowed", tc.o, err)
			}
			continue
		}
		var e *api.Error
		if !errors.As(err, &e) || e.Code != api.CodeInvalid || e.Field != tc.field || !strings.Contains(e.Message, tc.want) {
			t.Errorf("%+v: %v; want Invalid %s %q", tc.o, err, tc.field, tc.want)
		}
	}
}

// The server's URL has the listen host as written; a wildcard becomes the
// machine's host name when it resolves.
func TestURLHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]string{"127.0.0.1": "127.0.0.1", "::1": "::1", "paddock.example.com": "paddock.example.com"} {
		if got := urlHost(host); got != want {
			t.Errorf("urlHost(%q) = %q, want %q", host, got, want)
		}
	}
	want := "127.0.0.1"
	if h, err := os.Hostname(); err == nil {
		if _, err := net.LookupHost(h); err == nil {
			want = h
		}
	}
	for _, host := range []string{"", "0.0.0.0", "::"} {
		if got := urlHost(host); got != want {
			t.Errorf("urlHost(%q) = %q, want %q", host, got, want)
		}
	}
}

// With --tls the data dir's tls/ holds the CA and certificate, 0600 in a
// 0700 directory, the URL is https:// and the CLI config pins the CA.
func TestTLSFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := filepath.Join(t.TempDir(), "config")
	t.Setenv("PADDOCK_CONFIG", cfg)
	var url string
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs syncBuffer
	err := Run(ctx, Options{DataDir: dir, Listen: "127.0.0.1:0", NoLocalAgent: true, TLS: true,
		Log: slog.New(slog.NewTextHandler(&logs, nil)), Ready: func(u string) { url = u; cancel() }})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v\n%s", err, logs.String())
	}
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Errorf("URL %q", url)
	}
	if fi, err := os.Stat(filepath.Join(dir, tlsDir)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v %v", tlsDir, fi.Mode(), err)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem"} {
		if fi, err := os.Stat(filepath.Join(dir, tlsDir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	data, _ := os.ReadFile(cfg)
	ca, _ := os.ReadFile(filepath.Join(dir, tlsDir, "ca.pem"))
	if !strings.Contains(string(data), `"ca": "-----BEGIN CERTIFICATE-----`) || len(ca) == 0 {
		t.Errorf("the CLI config does not pin the CA: %s", data)
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Error("a private key was logged")
	}
}
