package studio

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// Axes are labelled at round numbers: a loss from 2 to 0.1 reads 0, 0.5,
// 1, 1.5, 2, not quarters of its range.
func TestNiceRange(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		whole  bool
		want   string
	}{
		{0.1, 2, false, "0 2 0.5"},
		{0, 1, true, "0 1 1"},
		{0, 7, true, "0 8 2"},
		{3, 3, false, "2 4 0.5"},
		{-0.013, 0.021, false, "-0.02 0.03 0.01"},
		{0, 1000, true, "0 1000 500"},
	} {
		lo, hi, step := niceRange(c.lo, c.hi, c.whole)
		if got := fmt.Sprint(fmtNum(lo), " ", fmtNum(hi), " ", fmtNum(step)); got != c.want {
			t.Errorf("niceRange(%v, %v, %v) = %s, want %s", c.lo, c.hi, c.whole, got, c.want)
		}
	}
}

// A metric logged a million times is drawn with at most maxPoints points,
// its last value among them.
func TestMetricChartThins(t *testing.T) {
	ms := make([]api.Metric, 1_000_000)
	for i := range ms {
		ms[i] = api.Metric{Name: "loss", Step: int64(i + 1), Value: 1 / float64(i+1)}
	}
	cs := metricCharts(ms)
	if len(cs) != 1 {
		t.Fatalf("%d charts", len(cs))
	}
	line := string(cs[0].SVG)
	line = line[strings.Index(line, "<polyline"):]
	if n := strings.Count(line[:strings.Index(line, "/>")], ","); n != maxPoints {
		t.Errorf("%d points drawn, want %d", n, maxPoints)
	}
	if !strings.Contains(cs[0].Summary, "1000000 values, the last 1e-06 at step 1000000") {
		t.Errorf("summary %q", cs[0].Summary)
	}
}

// A node chart spans at least a minute, up to now.
func TestNodeChartWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c := nodeChart([]sample{{At: now.Add(-5 * time.Second)}, {At: now.Add(-3 * time.Second), counts: counts{Running: 1}}}, now)
	if !strings.Contains(string(c.SVG), ">11:59:00<") || !strings.Contains(string(c.SVG), ">12:00:00<") {
		t.Errorf("the time axis: %s", c.SVG)
	}
	if c.Summary != "1 node now; followed since 11:59:55" {
		t.Errorf("summary %q", c.Summary)
	}
}

// Only numbers are charted; a metric of another kind shows its last value.
func TestOtherMetrics(t *testing.T) {
	ms := []api.Metric{
		{Name: "loss", Value: 0.5, Step: 1}, {Name: "loss", Value: 0.25, Step: 2},
		{Name: "note", Kind: api.MetricString, Text: "warming up", Step: 1}, {Name: "note", Kind: api.MetricString, Text: "done", Step: 2},
		{Name: "row", Kind: api.MetricRow, Data: []byte(`{"epoch":1,"acc":0.9}`), Step: 0},
		{Name: "text", Kind: api.MetricString, Text: strings.Repeat("é", 400)},
	}
	if cs := metricCharts(ms); len(cs) != 1 || cs[0].Name != "loss" {
		t.Errorf("charts: %+v", cs)
	}
	got := otherMetrics(ms)
	if len(got) != 3 || got[0] != (otherMetric{Name: "note", Kind: "string", Value: "done", Step: 2, Count: 2}) ||
		got[1].Value != `{"epoch":1,"acc":0.9}` {
		t.Errorf("others: %+v", got)
	}
	if v := got[2].Value; len(v) > maxOtherLen+len("…") || !strings.HasSuffix(v, "é…") {
		t.Errorf("a long value is cut to %d bytes, on a character: %q", len(v), v)
	}
}
