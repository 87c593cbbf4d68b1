package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func deadURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

func TestServers(t *testing.T) {
	got := Servers(" http://a/ ,http://b\nhttp://a  http://c/")
	want := []string{"http://a", "http://b", "http://c"}
	if len(got) != len(want) {
		t.Fatalf("Servers = %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Servers = %q, want %q", got, want)
		}
	}
}

// A server that cannot be reached is skipped, and the one that answered
// is called first next time.
func TestClientFailsOver(t *testing.T) {
	var calls atomic.Int32
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(append([]byte(`{"id":`), append(b, '}')...))
	}))
	defer live.Close()
	c := NewClient(deadURL(t)+","+live.URL, "tok", "default")
	var out struct{ ID string }
	if err := c.Do(context.Background(), http.MethodPost, "/x", "abc", &out); err != nil || out.ID != "abc" {
		t.Fatalf("Do = %+v, %v", out, err)
	}
	if c.start(2) != 1 {
		t.Fatal("the server that answered is not the first tried next")
	}
	if err := c.Do(context.Background(), http.MethodGet, "/x", nil, nil); err != nil {
		t.Fatal(err)
	}
}

// A server that says another must take the call (not applied) is skipped.
func TestClientRetriesElsewhere(t *testing.T) {
	follower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderRetryElsewhere, "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"code":"Unavailable","message":"no leader"}}`)
	}))
	defer follower.Close()
	var got atomic.Int32
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer leader.Close()
	c := NewClient(follower.URL+","+leader.URL, "tok", "default")
	if err := c.Do(context.Background(), http.MethodPost, "/x", map[string]int{"a": 1}, nil); err != nil || got.Load() != 1 {
		t.Fatalf("Do = %v; the leader got %d calls", err, got.Load())
	}
	// Alone, the answer is the error.
	c = NewClient(follower.URL, "tok", "default")
	if err := c.Do(context.Background(), http.MethodPost, "/x", nil, nil); err == nil || AsError(err).Code != CodeUnavailable {
		t.Fatalf("Do = %v, want Unavailable", err)
	}
}

// A write whose request reached a server that then failed is not sent
// again (it may have been applied); the next call starts with the next
// server.
func TestClientDoesNotResendWrites(t *testing.T) {
	var first atomic.Int32
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.Add(1)
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	}))
	defer broken.Close()
	var second atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { second.Add(1) }))
	defer other.Close()
	c := NewClient(broken.URL+","+other.URL, "tok", "default")
	if err := c.Do(context.Background(), http.MethodPost, "/x", map[string]int{"a": 1}, nil); err == nil {
		t.Fatal("a write that reached a failing server succeeded")
	}
	if second.Load() != 0 {
		t.Fatal("a write that may have been applied was sent again")
	}
	if err := c.Do(context.Background(), http.MethodGet, "/x", nil, nil); err != nil || second.Load() != 1 {
		t.Fatalf("the next call: %v, other got %d", err, second.Load())
	}
}
