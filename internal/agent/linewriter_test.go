package agent

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/api"
)

// texts returns the shipper's unsent lines as text, checking that they are
// numbered consecutively from first.
func texts(t *testing.T, s *shipper, first int64) []string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for i, l := range s.lines {
		if l.N != first+int64(i) {
			t.Errorf("line %d is numbered %d, want %d", i, l.N, first+int64(i))
		}
		out = append(out, l.Text)
	}
	return out
}

func TestLineWriter(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxLineBytes)
	tests := []struct {
		name   string
		writes []string
		flush  bool
		want   []string
	}{
		{"lines in one write", []string{"a\nb\n"}, false, []string{"a", "b"}},
		{"a line split across writes", []string{"he", "llo\nwor", "ld\n"}, false, []string{"hello", "world"}},
		{"empty lines", []string{"\n\n"}, false, []string{"", ""}},
		{"CRLF", []string{"a\r\nb\r\n"}, false, []string{"a", "b"}},
		{"CR and LF in different writes", []string{"a\r", "\n"}, false, []string{"a"}},
		{"a CR inside a line stays", []string{"50%\r100%\n"}, false, []string{"50%\r100%"}},
		{"a partial line waits", []string{"done\ntail"}, false, []string{"done"}},
		{"flush sends the partial line", []string{"done\ntail"}, true, []string{"done", "tail"}},
		{"flush with nothing pending", []string{"done\n"}, true, []string{"done"}},
		{"a line of exactly the limit", []string{long + "\n"}, false, []string{long}},
		{"a long line is split", []string{long + long + "tail\n"}, false, []string{long, long, "tail"}},
		{"a long line across writes", []string{long[:1000], long[1000:] + "ab", "cd\n"}, false, []string{long, "abcd"}},
		{"a long partial line is split before the newline", []string{long + "ab"}, false, []string{long}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newShipper(nil, api.AttemptRef{RunID: "r", Attempt: 1}, 0)
			w := s.writer("stdout")
			for _, p := range tt.writes {
				if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(p))
				}
			}
			if tt.flush {
				s.flushWriters()
				s.flushWriters() // a second flush adds nothing
			}
			got := texts(t, s, 1)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", shorten(diff))
			}
		})
	}
}

// shorten keeps diffs of 64 KiB lines readable.
func shorten(s string) string {
	return strings.ReplaceAll(s, strings.Repeat("x", 1024), "x…")
}

// The same bytes must make the same lines however the process's writes cut
// them. A line whose length is a multiple of maxLineBytes is split into
// chunks as soon as the buffer is full, and the newline that follows in a
// later write (or a CR before it) then makes an extra empty line.
func TestLineWriterSplitDoesNotDependOnWrites(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxLineBytes)
	tests := []struct {
		name   string
		writes []string
	}{
		{"newline in the next write", []string{long, "\n"}},
		{"two chunks, newline in the next write", []string{long + long, "\n"}},
		{"CRLF after a full chunk", []string{long + "\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newShipper(nil, api.AttemptRef{RunID: "r", Attempt: 1}, 0)
			w := s.writer("stdout")
			for _, p := range tt.writes {
				w.Write([]byte(p))
			}
			s.flushWriters()
			var want []string
			for range strings.Count(strings.Join(tt.writes, ""), "x") / maxLineBytes {
				want = append(want, long)
			}
			if diff := cmp.Diff(want, texts(t, s, 1)); diff != "" {
				t.Errorf("lines (-want +got):\n%s", shorten(diff))
			}
		})
	}
}

func TestLineNumbersFollowTheAck(t *testing.T) {
	t.Parallel()
	s := newShipper(nil, api.AttemptRef{RunID: "r", Attempt: 2}, 41)
	out, errw := s.writer("stdout"), s.writer("stderr")
	out.Write([]byte("one\ntw"))
	errw.Write([]byte("oops\n"))
	out.Write([]byte("o\n"))
	errw.Write([]byte("last"))
	s.flushWriters()
	var got []api.AgentLogLine
	s.mu.Lock()
	for _, l := range s.lines {
		got = append(got, api.AgentLogLine{N: l.N, Stream: l.Stream, Text: l.Text})
		if l.TimeNS == 0 {
			t.Errorf("line %d has no time", l.N)
		}
	}
	s.mu.Unlock()
	want := []api.AgentLogLine{
		{N: 42, Stream: "stdout", Text: "one"},
		{N: 43, Stream: "stderr", Text: "oops"},
		{N: 44, Stream: "stdout", Text: "two"},
		{N: 45, Stream: "stderr", Text: "last"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}
