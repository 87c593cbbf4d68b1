package replica

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// leaderAt is a Leader whose lookups return what url holds.
func leaderAt(url *atomic.Value) *Leader {
	var epoch atomic.Int64
	return &Leader{Lookup: func(context.Context) (string, int64, error) {
		u, _ := url.Load().(string)
		if u == "" {
			return "", 0, nil
		}
		return u, epoch.Add(0), nil
	}}
}

func follower(local http.Handler, leader *Leader, leading *atomic.Bool) *Handler {
	return &Handler{
		Local:          local,
		Leading:        leading.Load,
		FollowerServes: func(r *http.Request) bool { return r.Method == http.MethodGet },
		Leader:         leader,
		Transport:      http.DefaultTransport,
		Sign:           func(addr string) string { return "sig:" + addr },
		Verify:         func(addr, sig string) bool { return sig == "sig:"+addr },
		Log:            slog.New(slog.DiscardHandler),
		WaitLeader:     2 * time.Second,
	}
}

func TestFollowerServesReadsAndForwardsWrites(t *testing.T) {
	var mu sync.Mutex
	var gotBody, gotFrom string
	leaderSrv := httptest.NewServer(&Handler{
		Local: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			gotBody, gotFrom = string(b), r.RemoteAddr
			mu.Unlock()
			w.Header().Set("X-From", "leader")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "made")
		}),
		Leading: func() bool { return true },
		Verify:  func(addr, sig string) bool { return sig == "sig:"+addr },
	})
	defer leaderSrv.Close()
	var url atomic.Value
	url.Store(leaderSrv.URL)
	var leading atomic.Bool
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "local") })
	f := httptest.NewServer(follower(local, leaderAt(&url), &leading))
	defer f.Close()

	resp, err := http.Get(f.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "local" {
		t.Fatalf("a read was answered %q, want the follower's own", b)
	}
	resp, err = http.Post(f.URL+"/x?y=1", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != http.StatusCreated || string(b) != "made" || resp.Header.Get("X-From") != "leader" || gotBody != `{"a":1}` {
		t.Fatalf("forwarded write: %d %q %v; leader got %q", resp.StatusCode, b, resp.Header, gotBody)
	}
	if host, _, _ := net.SplitHostPort(gotFrom); host != "127.0.0.1" || gotFrom == "" {
		t.Fatalf("the leader saw the caller as %q", gotFrom)
	}
}

// A forged forwarded-for header is ignored.
func TestForgedForwardedForIsIgnored(t *testing.T) {
	var from atomic.Value
	h := &Handler{Local: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { from.Store(r.RemoteAddr) }),
		Leading: func() bool { return true }, Verify: func(addr, sig string) bool { return sig == "sig:"+addr }}
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set(headerForwardedFor, "10.9.9.9:1")
	req.Header.Set(headerForwardedSig, "forged")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := from.Load().(string); strings.HasPrefix(got, "10.9.9.9") {
		t.Fatal("a forged caller address was believed")
	}
}

// No leader: the follower answers 503 with the retry-elsewhere header
// once it has waited.
func TestNoLeader(t *testing.T) {
	var url atomic.Value
	var leading atomic.Bool
	f := httptest.NewServer(follower(http.NotFoundHandler(), leaderAt(&url), &leading))
	defer f.Close()
	start := time.Now()
	resp, err := http.Post(f.URL+"/x", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(api.HeaderRetryElsewhere) == "" {
		t.Fatalf("answer %d %v, want 503 with %s", resp.StatusCode, resp.Header, api.HeaderRetryElsewhere)
	}
	if time.Since(start) < time.Second {
		t.Fatal("did not wait for an election")
	}
}

// A leader that died is replaced: the request (its body kept) goes to the
// next leader, and the caller does not notice.
func TestForwardWaitsForTheNextLeader(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	var got atomic.Value
	next := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer next.Close()
	var url atomic.Value
	url.Store(deadURL)
	var leading atomic.Bool
	f := httptest.NewServer(follower(http.NotFoundHandler(), leaderAt(&url), &leading))
	defer f.Close()
	go func() {
		time.Sleep(300 * time.Millisecond)
		url.Store(next.URL) // the takeover
	}()
	resp, err := http.Post(f.URL+"/report", "application/json", strings.NewReader(`{"status":"Running"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || got.Load() != `{"status":"Running"}` {
		t.Fatalf("answer %d, the new leader got %v", resp.StatusCode, got.Load())
	}
}

// A replica that wins while a request waits serves it itself.
func TestServesOnceLeading(t *testing.T) {
	var url atomic.Value
	var leading atomic.Bool
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "mine:"+string(b))
	})
	f := httptest.NewServer(follower(local, leaderAt(&url), &leading))
	defer f.Close()
	go func() {
		time.Sleep(200 * time.Millisecond)
		leading.Store(true)
		url.Store("http://this.invalid")
	}()
	resp, err := http.Post(f.URL+"/x", "application/json", strings.NewReader(`b`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "mine:b" {
		t.Fatalf("answer %q", b)
	}
}
