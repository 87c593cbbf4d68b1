package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/certs"
)

// The server URL can change (a restarted server on a new port) while
// attempts' goroutines are calling the server: refreshServer must not
// write to a client they are using (the race-built agent in the e2e tests
// caught it doing so), and every call after it goes to the new URL.
func TestRefreshServerWhileCallsAreInFlight(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) }))
	defer srv.Close()
	// The same server by two names, so the URL changes at every refresh.
	urls := []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)}
	file := filepath.Join(t.TempDir(), "server-url")
	a := testAgent(urls[0])
	a.cfg.ServerFile = file

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := a.client.Load().Do(context.Background(), http.MethodGet, "/x", nil, nil); err != nil {
					t.Error(err)
					return
				}
				_ = a.uploads.Load().Server
			}
		}()
	}
	for i := range 100 {
		os.WriteFile(file, []byte(urls[i%2]+"\n"), 0o600)
		a.refreshServer()
	}
	wg.Wait()
	os.WriteFile(file, []byte(urls[1]+"\n"), 0o600)
	a.refreshServer()
	if a.client.Load().Server != urls[1] || a.uploads.Load().Server != urls[1] {
		t.Errorf("after the last refresh: client at %s, uploads at %s; want %s", a.client.Load().Server, a.uploads.Load().Server, urls[1])
	}
}

// tlsServer serves HTTPS with a certificate from a CA of its own, and
// answers every request with its name; it returns its URL and the CA.
func tlsServer(t *testing.T, name string) (string, []byte) {
	t.Helper()
	g, err := certs.LoadOrCreate(t.TempDir(), certs.NamesFor("127.0.0.1"), time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%q", name)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{*g.Certificate()}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, g.CAPEM()
}

// The agent pins the CA of its CA file, and re-reads the file with the
// server URL: a server restarted with another CA is followed, a CA file
// that cannot be used keeps the CA in use, and runs get a readable copy.
func TestRefreshServerKeepsAndFollowsTheCA(t *testing.T) {
	t.Parallel()
	urlA, caA := tlsServer(t, "a")
	urlB, caB := tlsServer(t, "b")
	dir := t.TempDir()
	serverFile, caFile := filepath.Join(dir, "server-url"), filepath.Join(dir, "ca.pem")
	os.WriteFile(serverFile, []byte(urlA+"\n"), 0o600)
	os.WriteFile(caFile, caA, 0o600)
	a := &Agent{cfg: Config{ServerFile: serverFile, CAFile: caFile, WorkDir: filepath.Join(dir, "work")}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	os.MkdirAll(a.cfg.WorkDir, 0o700)
	if err := a.connect("pdn_x"); err != nil {
		t.Fatal(err)
	}
	ask := func() (string, error) {
		var who string
		err := a.client.Load().Do(context.Background(), http.MethodGet, "/x", nil, &who)
		if err == nil {
			var up string
			err = a.uploads.Load().Do(context.Background(), http.MethodGet, "/x", nil, &up)
			if up != who {
				t.Errorf("uploads went to %q, calls to %q", up, who)
			}
		}
		return who, err
	}
	if who, err := ask(); err != nil || who != "a" {
		t.Fatalf("with A's CA: %q %v", who, err)
	}
	runCA := a.runCA()
	if data, err := os.ReadFile(runCA); err != nil || string(data) != string(caA) {
		t.Errorf("the runs' copy of the CA: %v", err)
	}
	if fi, err := os.Stat(runCA); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the runs' copy of the CA: mode %v, want 0644", fi.Mode())
	}

	// A new URL only: the CA is kept.
	os.WriteFile(serverFile, []byte(strings.Replace(urlA, "127.0.0.1", "localhost", 1)+"\n"), 0o600)
	a.refreshServer()
	if who, err := ask(); err != nil || who != "a" {
		t.Fatalf("after a new URL: %q %v", who, err)
	}
	// Another server with another CA: followed.
	os.WriteFile(serverFile, []byte(urlB+"\n"), 0o600)
	os.WriteFile(caFile, caB, 0o600)
	a.refreshServer()
	if who, err := ask(); err != nil || who != "b" {
		t.Fatalf("after a new server and CA: %q %v", who, err)
	}
	if data, _ := os.ReadFile(runCA); string(data) != string(caB) {
		t.Error("the runs' copy of the CA did not follow")
	}
	// A CA file that cannot be used: the CA in use stays.
	os.WriteFile(caFile, []byte("half a certificate"), 0o600)
	a.refreshServer()
	if who, err := ask(); err != nil || who != "b" {
		t.Fatalf("after a broken CA file: %q %v", who, err)
	}
	// No CA file: the system's roots, which do not know B's CA.
	os.Remove(caFile)
	a.refreshServer()
	if _, err := ask(); err == nil || !strings.Contains(err.Error(), "does not trust") {
		t.Errorf("with the system's roots: %v", err)
	}
	if a.runCA() != "" {
		t.Error("runs are still given a CA")
	}
	if _, err := os.Stat(runCA); !os.IsNotExist(err) {
		t.Errorf("the runs' copy of the CA is left (%v)", err)
	}
}
