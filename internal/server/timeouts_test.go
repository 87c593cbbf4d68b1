package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// listen serves the test server's API on a loopback port with the real
// server's settings and the given timeouts.
func (s *testServer) listen(tm Timeouts) string {
	s.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	srv := NewHTTPServer(s.api, context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), tm)
	go srv.Serve(ln)
	s.t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// rawRequest writes head (and what follows it) on a new connection and
// reads until the server closes it, failing if it has not within 10 s.
func rawRequest(t *testing.T, addr, head string) (string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetDeadline(start.Add(10 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the server held the connection for 10 s (read %q): %v", out, err)
	}
	return string(out), time.Since(start)
}

// A client that stops sending a JSON body is cut off after the body
// timeout, instead of holding a connection and a goroutine for ever.
func TestStalledBodyIsCutOff(t *testing.T) {
	s := newTestServer(t)
	s.api.bodyTimeout = 300 * time.Millisecond
	addr := s.listen(DefaultTimeouts)
	out, took := rawRequest(t, addr, "POST /api/v1/workspaces/default/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+s.token+
		"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":")
	if !strings.HasPrefix(out, "HTTP/1.1 400") || !strings.Contains(out, "was not sent within") {
		t.Errorf("after %s the server answered %q", took, out)
	}
}

// The body timeout does not cut off what takes longer for good reasons:
// an upload sent slowly has the upload timeout, and a long poll may be
// held long after its body was read.
func TestSlowUploadsAndLongPollsOutliveTheBodyTimeout(t *testing.T) {
	s := newTestServer(t)
	node := s.addNode("node-a")
	s.api.bodyTimeout = 200 * time.Millisecond
	addr := s.listen(DefaultTimeouts)
	url := "http://" + addr

	t.Run("slow upload", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			for range 5 {
				time.Sleep(150 * time.Millisecond)
				pw.Write([]byte(strings.Repeat("s", 1000)))
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("PUT", url+"/api/v1/workspaces/default/snapshots", pr)
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusCreated {
			t.Fatalf("a slow upload: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("long poll", func(t *testing.T) {
		req, _ := http.NewRequest("POST", url+"/api/v1/agent/poll", strings.NewReader(`{"wait_ms": 1000}`))
		req.Header.Set("Authorization", "Bearer "+node)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || time.Since(start) < 900*time.Millisecond {
			t.Fatalf("a 1 s poll: %d %s after %s", resp.StatusCode, body, time.Since(start))
		}
	})
}

// A kept-alive connection left idle is closed after the idle timeout.
func TestIdleConnectionIsClosed(t *testing.T) {
	s := newTestServer(t)
	tm := DefaultTimeouts
	tm.Idle = 300 * time.Millisecond
	addr := s.listen(tm)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatal("the server did not keep the connection alive")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("an idle connection was not closed within 10 s: %v", err)
	}
}
