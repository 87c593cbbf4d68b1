package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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
