// Package replica is how one of several servers sharing a workspace's
// database answers HTTP: the leader serves everything; a follower serves
// the reads that need only the store itself (server.FollowerServes) and
// forwards every other request to the leader, so clients, agents and runs
// may call any replica.
//
//	client ──► follower ──┬─ read (runs, logs, targets…) ──► its own API, from the store
//	                      └─ anything else ──► leader's API (the reply is passed back)
//
// Forwarding, not redirecting: clients need not follow redirects or know
// which replica leads, and an agent's long poll held by a follower ends
// when the leader answers. A request the follower could not hand to a
// leader (none elected yet, or it could not connect) is answered 503 with
// api.HeaderRetryElsewhere: it was not applied, and clients that know
// several servers try the next.
package replica

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// Headers a follower adds to what it forwards: the caller's address,
// signed with the workspace's key (which only the replicas hold), so that
// the leader's audit log names the caller rather than the follower.
const (
	headerForwardedFor = "Paddock-Forwarded-For"
	headerForwardedSig = "Paddock-Forwarded-Sig"
)

// maxBuffered is the largest body a follower keeps to send again when it
// could not reach the leader; larger ones (uploads) are streamed once.
const maxBuffered = 16 << 20

// Handler serves one replica's requests.
type Handler struct {
	// Local is this replica's API.
	Local http.Handler
	// Self is this replica's URL: a request is not forwarded to it.
	Self string
	// Leading reports whether this replica leads now.
	Leading func() bool
	// FollowerServes reports whether a follower serves a request itself.
	FollowerServes func(r *http.Request) bool
	// Leader is the URL of the replica that leads now, waiting (up to ctx)
	// for one to be elected; "" when ctx ends first.
	Leader *Leader
	// Transport reaches the other replicas (it pins the workspace's CA).
	Transport http.RoundTripper
	// Sign and Verify sign the forwarded caller's address.
	Sign   func(addr string) string
	Verify func(addr, sig string) bool
	Log    *slog.Logger
	// WaitLeader bounds how long a request waits for a leader to be
	// elected (default 10 s).
	WaitLeader time.Duration
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if addr := r.Header.Get(headerForwardedFor); addr != "" {
		if h.Verify != nil && h.Verify(addr, r.Header.Get(headerForwardedSig)) {
			r.RemoteAddr = addr
		}
		r.Header.Del(headerForwardedFor)
		r.Header.Del(headerForwardedSig)
	}
	if h.Leading() || h.FollowerServes(r) {
		h.Local.ServeHTTP(w, r)
		return
	}
	h.forward(w, r)
}

// retryElsewhere answers a request that was not applied.
func retryElsewhere(w http.ResponseWriter, msg string) {
	w.Header().Set(api.HeaderRetryElsewhere, "1")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	e := api.Unavailable("%s", msg)
	io.WriteString(w, `{"error":{"code":"`+string(e.Code)+`","message":`+quote(e.Message)+`}}`+"\n")
}

func quote(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(" ")
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// forward hands r to the leader and passes its answer back. A body small
// enough is kept, so that a leader that cannot be reached (it just died)
// can be replaced by the next one without the caller noticing.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request) {
	wait := h.WaitLeader
	if wait <= 0 {
		wait = 10 * time.Second
	}
	var body []byte
	replayable := r.Body == nil || r.Body == http.NoBody || r.ContentLength >= 0 && r.ContentLength <= maxBuffered
	if replayable && r.Body != nil && r.Body != http.NoBody {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, maxBuffered+1)); err != nil {
			return // the caller went away
		}
		if len(body) > maxBuffered {
			replayable = false
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		}
	}
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		leader, gen := h.Leader.Wait(ctx)
		cancel()
		if leader == "" {
			if r.Context().Err() == nil {
				retryElsewhere(w, "no replica leads the workspace now (an election is under way); the request was not applied: retry it")
			}
			return
		}
		if leader == h.Self && !h.Leading() {
			// This replica won the lease and is loading its state: serve it
			// once it leads, rather than forwarding to itself.
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().Before(deadline) {
				continue
			}
			retryElsewhere(w, "this replica is taking over as leader; the request was not applied: retry it")
			return
		}
		if h.Leading() { // this replica won meanwhile
			if replayable {
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			h.Local.ServeHTTP(w, r)
			return
		}
		out := r.Clone(r.Context())
		target := strings.TrimRight(leader, "/") + r.URL.RequestURI()
		u, err := out.URL.Parse(target)
		if err != nil {
			retryElsewhere(w, "the leader's URL is not valid")
			return
		}
		out.URL, out.Host, out.RequestURI = u, u.Host, ""
		if replayable {
			out.Body = io.NopCloser(bytes.NewReader(body))
			out.ContentLength = int64(len(body))
			if body == nil {
				out.Body = http.NoBody
			}
		}
		out.Header.Set(headerForwardedFor, r.RemoteAddr)
		if h.Sign != nil {
			out.Header.Set(headerForwardedSig, h.Sign(r.RemoteAddr))
		}
		// A request in flight to a leader that is replaced (it was paused,
		// or cut off) is ended: the new leader has its state.
		fctx, stop := context.WithCancel(r.Context())
		go func() {
			select {
			case <-gen:
				stop()
			case <-fctx.Done():
			}
		}()
		resp, err := h.Transport.RoundTrip(out.WithContext(fctx))
		if err != nil {
			replaced := fctx.Err() != nil
			stop()
			if r.Context().Err() != nil {
				return
			}
			if replaced { // another request found the leader gone
				h.Log.Debug("forwarding: the leader was replaced while the request was in flight", "leader", leader, "method", r.Method, "path", r.URL.Path)
				e := api.Unavailable("the leader was replaced while handling the request; it may or may not have been applied")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadGateway)
				io.WriteString(w, `{"error":{"code":"`+string(e.Code)+`","message":`+quote(e.Message)+`}}`+"\n")
				return
			}
			h.Leader.Failed(leader)
			if notSent(err) && replayable && time.Now().Before(deadline) {
				h.Log.Debug("forwarding: the leader cannot be reached; waiting for the next", "leader", leader, "err", err)
				select { // until its lease is taken over (within a quarter of a second when it died)
				case <-r.Context().Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			h.Log.Warn("forwarding a request to the leader failed", "leader", leader, "method", r.Method, "path", r.URL.Path, "err", err)
			if notSent(err) {
				retryElsewhere(w, "the leader cannot be reached; the request was not applied: retry it")
				return
			}
			e := api.Unavailable("the leader went away while handling the request; it may or may not have been applied")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, `{"error":{"code":"`+string(e.Code)+`","message":`+quote(e.Message)+`}}`+"\n")
			return
		}
		copyResponse(w, resp)
		resp.Body.Close()
		stop()
		return
	}
}

// hopHeaders are connection-level headers a proxy does not pass on.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer"}

func copyResponse(w http.ResponseWriter, resp *http.Response) {
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	for _, k := range hopHeaders {
		w.Header().Del(k)
	}
	w.WriteHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// notSent reports whether a request failed before any of it reached the
// server: it could not connect.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Leader tracks which replica leads: it asks the store when it does not
// know, and is told when the lease changes hands (Changed).
type Leader struct {
	// Lookup asks the store for the leader's URL ("" while none holds the
	// lease) and the lease's epoch.
	Lookup func(ctx context.Context) (url string, epoch int64, err error)

	mu    sync.Mutex
	url   string
	epoch int64
	gen   chan struct{} // closed when the leader changes
}

// Wait returns the leader's URL, asking the store every 100 ms while none
// is known, and a channel closed when it changes; "" when ctx ends first.
func (l *Leader) Wait(ctx context.Context) (string, <-chan struct{}) {
	for {
		l.mu.Lock()
		if l.gen == nil {
			l.gen = make(chan struct{})
		}
		url, gen := l.url, l.gen
		l.mu.Unlock()
		if url != "" {
			return url, gen
		}
		if u, e, err := l.Lookup(ctx); err == nil && u != "" {
			l.set(u, e)
			continue
		}
		select {
		case <-ctx.Done():
			return "", nil
		case <-gen:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (l *Leader) set(url string, epoch int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if url == l.url && epoch == l.epoch {
		return
	}
	if epoch < l.epoch && url != "" {
		return // an older answer
	}
	l.url, l.epoch = url, epoch
	if l.gen != nil {
		close(l.gen)
	}
	l.gen = make(chan struct{})
}

// Changed is called when the lease may have changed hands: the leader is
// asked for again.
func (l *Leader) Changed(ctx context.Context) {
	u, e, err := l.Lookup(ctx)
	if err != nil {
		return
	}
	l.set(u, e)
}

// Failed forgets a leader that could not be reached, so the next request
// asks the store again.
func (l *Leader) Failed(url string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.url == url {
		l.url = ""
		if l.gen != nil {
			close(l.gen)
		}
		l.gen = make(chan struct{})
	}
}
