package runs

import (
	"context"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/internal/store"
)

// sizedStore answers LogBytes only.
type sizedStore struct {
	store.Store
	bytes map[string]int64
}

func (s sizedStore) LogBytes(_ context.Context, runID string) (int64, error) {
	return s.bytes[runID], nil
}

func logLines(texts ...string) []store.LogLine {
	var out []store.LogLine
	for i, t := range texts {
		out = append(out, store.LogLine{ASeq: int64(i + 1), Stream: "stdout", Text: t})
	}
	return out
}

func TestLogLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		max      int64
		stored   int64 // before the batch
		batch    []string
		kept     int  // lines of the batch kept
		marker   bool // a marker follows them
		reserved int64
	}{
		{"no limit", 0, 1 << 40, []string{"aaaa", "bbbb"}, 2, false, 0},
		{"under", 20, 0, []string{"aaaa", "bbbb"}, 2, false, 8},
		{"exactly at the limit", 8, 0, []string{"aaaa", "bbbb"}, 2, false, 8},
		{"crossing it", 10, 4, []string{"aaaa", "bbbb"}, 1, true, 4},
		{"past it already", 10, 10, []string{"aaaa"}, 0, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLogLimit(tc.max, sizedStore{bytes: map[string]int64{"run-1": tc.stored}})
			kept, reserved, err := l.admit(context.Background(), "run-1", logLines(tc.batch...))
			if err != nil {
				t.Fatal(err)
			}
			wantLen := tc.kept
			if tc.marker {
				wantLen++
			}
			if len(kept) != wantLen {
				t.Fatalf("kept %d lines, want %d: %+v", len(kept), wantLen, kept)
			}
			if tc.marker {
				m := kept[len(kept)-1]
				if !strings.Contains(m.Text, "reached its limit") || m.Stream != "stderr" || m.ASeq != int64(tc.kept+1) {
					t.Errorf("marker = %+v", m)
				}
				tc.reserved += int64(len(m.Text))
			}
			if reserved != tc.reserved {
				t.Errorf("reserved %d, want %d", reserved, tc.reserved)
			}
			// Once the marker is stored, nothing more is kept.
			if tc.marker {
				if more, _, _ := l.admit(context.Background(), "run-1", logLines("c")); len(more) != 0 {
					t.Errorf("after the marker, kept %+v", more)
				}
			}
		})
	}
}

// A reservation given back (the store failed) counts no more.
func TestLogLimitRelease(t *testing.T) {
	l := newLogLimit(10, sizedStore{bytes: map[string]int64{}})
	_, n, _ := l.admit(context.Background(), "run-1", logLines("aaaaaaaa"))
	l.release("run-1", n)
	if kept, _, _ := l.admit(context.Background(), "run-1", logLines("bbbbbbbb")); len(kept) != 1 {
		t.Errorf("after a release the run's budget should be back: kept %+v", kept)
	}
}
