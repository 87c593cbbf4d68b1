package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// refusedMarker starts the line that takes the place of a refused batch;
// one that is itself refused is dropped.
const refusedMarker = "[paddock] refused:"

// Log shipping limits: lines and batches as the server takes them
// (api.MaxLogLineBytes, api.LogBatchLen).
const (
	maxLineBytes   = api.MaxLogLineBytes // longer lines are split
	maxBufferLines = 200000              // unacknowledged lines kept while the server is away
)

// shipper sends an attempt's output lines to the server in order. Lines
// are numbered from 1 within the attempt; the server acknowledges the last
// one it stored, and the shipper resends everything after that until it is
// acknowledged, so a server restart loses no line and duplicates none. If
// the server is away so long that the buffer fills, the oldest unsent
// lines are dropped and a marker line says how many.
type shipper struct {
	a   *Agent
	ref api.AttemptRef

	mu      sync.Mutex
	lines   []api.AgentLogLine // not yet acknowledged
	next    int64              // number of the next line
	acked   int64
	dropped int64
	closed  bool
	gone    bool // the attempt is stale: stop sending
	// full is set when the server could not store the log (its disk is
	// full): the shipper stops and onFull is called once.
	full   bool
	onFull func(error)
	kick   chan struct{}
	done   chan struct{}

	writers []*lineWriter
}

func newShipper(a *Agent, ref api.AttemptRef, ack int64) *shipper {
	return &shipper{a: a, ref: ref, next: ack + 1, acked: ack, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

func (s *shipper) add(stream, text string) {
	s.mu.Lock()
	if len(s.lines) >= maxBufferLines {
		s.lines = s.lines[1:]
		s.dropped++
	}
	s.lines = append(s.lines, api.AgentLogLine{N: s.next, Stream: stream, TimeNS: time.Now().UnixNano(), Text: text})
	s.next++
	s.mu.Unlock()
	s.poke()
}

func (s *shipper) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// close says no more lines come; run then sends what is left and ends.
func (s *shipper) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.poke()
}

// storageFull reports whether the server could not store the log.
func (s *shipper) storageFull() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.full
}

// abandon stops sending (the attempt is stale).
func (s *shipper) abandon() {
	s.mu.Lock()
	s.gone = true
	s.mu.Unlock()
	s.poke()
}

// wait blocks until every line was acknowledged (true) or the shipper gave
// up (false).
func (s *shipper) wait(ctx context.Context) bool {
	select {
	case <-s.done:
	case <-ctx.Done():
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines) == 0
}

func (s *shipper) run(ctx context.Context) {
	defer close(s.done)
	retry := serverBackoff()
	for {
		s.mu.Lock()
		if s.dropped > 0 {
			// Keep numbering: the marker takes the place of the first kept line's predecessor.
			s.lines = append([]api.AgentLogLine{{N: s.lines[0].N - 1, Stream: "stderr", TimeNS: time.Now().UnixNano(),
				Text: "[paddock] log buffer full while the server was unreachable: older lines were dropped"}}, s.lines...)
			s.dropped = 0
		}
		batch := append([]api.AgentLogLine(nil), s.lines[:api.LogBatchLen(s.lines)]...)
		closed, gone := s.closed, s.gone
		s.mu.Unlock()
		if gone || len(batch) == 0 && closed {
			return
		}
		if len(batch) == 0 {
			select {
			case <-s.kick:
			case <-ctx.Done():
				return
			}
			continue
		}
		ack, err := s.a.client.Load().Logs(ctx, s.ref, batch)
		switch {
		case err == nil:
			retry.Reset()
			s.mu.Lock()
			s.acked = max(s.acked, ack)
			i := 0
			for i < len(s.lines) && s.lines[i].N <= s.acked {
				i++
			}
			s.lines = s.lines[i:]
			s.mu.Unlock()
		case errors.Is(err, api.ErrConflict), errors.Is(err, api.ErrNotFound), ctx.Err() != nil:
			return
		case errors.Is(err, api.ErrInsufficientStorage):
			s.mu.Lock()
			s.full, s.lines = true, nil
			onFull := s.onFull
			s.mu.Unlock()
			if onFull != nil {
				onFull(err)
			}
			return
		case errors.Is(err, api.ErrInvalid), errors.Is(err, api.ErrTooLarge):
			// Refused for what it is: sending it again cannot help. Say so
			// in its place and go on.
			s.mu.Lock()
			last := batch[len(batch)-1].N
			i := 0
			for i < len(s.lines) && s.lines[i].N <= last {
				i++
			}
			s.lines = s.lines[i:]
			if len(batch) > 1 || !strings.HasPrefix(batch[0].Text, refusedMarker) {
				s.lines = append([]api.AgentLogLine{{N: last, Stream: "stderr", TimeNS: time.Now().UnixNano(),
					Text: fmt.Sprintf("%s %d log lines were refused by the server and are lost: %v", refusedMarker, len(batch), err)}}, s.lines...)
			}
			s.mu.Unlock()
		default:
			if !s.a.retryAfter(ctx, retry) {
				return
			}
		}
	}
}

// writer returns an io.Writer that turns a stream's bytes into lines.
func (s *shipper) writer(stream string) *lineWriter {
	w := &lineWriter{s: s, stream: stream}
	s.writers = append(s.writers, w)
	return w
}

// flushWriters emits any last line without a newline.
func (s *shipper) flushWriters() {
	for _, w := range s.writers {
		w.flush()
	}
}

// lineWriter splits written bytes into lines. A line longer than
// maxLineBytes is sent in chunks; where a chunk ends exactly at the end of
// a line, the newline that follows in a later write ends nothing more, so
// the lines do not depend on how the process's writes were cut.
type lineWriter struct {
	s      *shipper
	stream string
	mu     sync.Mutex
	buf    []byte
	cut    bool // the last chunk sent ended a line that has not seen its newline yet
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			w.sendFullChunks()
			break
		}
		line := bytes.TrimSuffix(append(w.buf, p[:i]...), []byte("\r"))
		if len(line) > 0 || !w.cut {
			for len(line) > maxLineBytes {
				w.s.add(w.stream, string(line[:maxLineBytes]))
				line = line[maxLineBytes:]
			}
			w.s.add(w.stream, string(line))
		}
		w.buf, w.cut = w.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}

// sendFullChunks sends what a partial line has of whole chunks.
func (w *lineWriter) sendFullChunks() {
	sent := false
	for len(w.buf) > maxLineBytes || len(w.buf) == maxLineBytes && !bytes.HasSuffix(w.buf, []byte("\r")) {
		w.s.add(w.stream, string(w.buf[:maxLineBytes]))
		w.buf = append(w.buf[:0], w.buf[maxLineBytes:]...)
		sent = true
	}
	if sent {
		w.cut = len(w.buf) == 0 || string(w.buf) == "\r"
	}
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if line := bytes.TrimSuffix(w.buf, []byte("\r")); len(line) > 0 {
		w.s.add(w.stream, string(line))
	}
	w.buf, w.cut = nil, false
}
