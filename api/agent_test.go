package api

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// The bound LogBatchLen counts with is never below what encoding/json
// writes, whatever the text: escapes, invalid UTF-8, U+2028.
func TestJSONStringBoundCoversEncoding(t *testing.T) {
	pieces := []string{"a", "é", "日本", "\x00", "\x1f", "<", ">", "&", `"`, `\`, "\n", "\t", "\xff", "\xe2\x80", "\u2028", "\u2029", "\U0001F600", " "}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s := b.String()
		enc, _ := json.Marshal(s)
		if got := jsonStringBound(s); got < len(enc) {
			t.Fatalf("jsonStringBound(%q) = %d, encoding/json writes %d bytes", s, got, len(enc))
		}
	}
}

func TestLogBatchLenFitsTheServerLimits(t *testing.T) {
	line := func(text string) AgentLogLine {
		return AgentLogLine{N: math.MaxInt64, Stream: "stderr", TimeNS: math.MinInt64, Text: text}
	}
	many := func(n int, text string) []AgentLogLine {
		out := make([]AgentLogLine, n)
		for i := range out {
			out[i] = line(text)
		}
		return out
	}
	cases := []struct {
		name  string
		lines []AgentLogLine
		want  int // -1: only check the limits
	}{
		{"no lines", nil, 0},
		{"short lines: the line limit", many(MaxLogBatchLines+5, strings.Repeat("x", 100)), MaxLogBatchLines},
		{"long lines: the byte limit", many(500, strings.Repeat("x", MaxLogLineBytes)), -1},
		{"lines of escapes", many(500, strings.Repeat("\x01", MaxLogLineBytes)), -1},
		{"one longest line of escapes", many(1, strings.Repeat("<", MaxLogLineBytes)), 1},
	}
	for _, tc := range cases {
		n := LogBatchLen(tc.lines)
		if tc.want >= 0 && n != tc.want {
			t.Errorf("%s: %d lines, want %d", tc.name, n, tc.want)
		}
		if len(tc.lines) > 0 && n == 0 {
			t.Errorf("%s: not even one line fits", tc.name)
		}
		body, _ := json.Marshal(AgentLogs{Lines: tc.lines[:n]})
		if len(body) > MaxLogBatchBytes || n > MaxLogBatchLines {
			t.Errorf("%s: %d lines make %d bytes, over the %d-byte or %d-line limit", tc.name, n, len(body), MaxLogBatchBytes, MaxLogBatchLines)
		}
		if n < len(tc.lines) && n < MaxLogBatchLines {
			// The next line would not have fitted.
			more, _ := json.Marshal(AgentLogs{Lines: tc.lines[:n+1]})
			if len(more) <= MaxLogBatchBytes/2 {
				t.Errorf("%s: stopped at %d lines (%d bytes) though %d bytes is far from the limit", tc.name, n, len(body), len(more))
			}
		}
	}
}
