package studio

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// Charts are drawn on the server as inline SVG, so they read without
// JavaScript and a live page swaps a new one in; no chart library.

// maxPoints bounds the points a chart draws: a metric logged a million
// times is thinned (every k-th value, the first and last kept).
const maxPoints = 600

const (
	chartW, chartH           = 560, 180
	padL, padR, padT, padB   = 52, 12, 12, 26
	plotW, plotH             = chartW - padL - padR, chartH - padT - padB
	axisColor, gridColor     = "#5b6370", "#d7dbe0"
	lineColor, stepFillColor = "#1f5fbf", "#dbe7f8"
)

// chart is a drawn chart and what a screen reader says of it.
type chart struct {
	Name string
	SVG  template.HTML
	// Summary says the chart's last value in words.
	Summary string
}

// metricCharts draws one line chart per name of a number metric (ms are
// ordered by name, then step), value against step.
func metricCharts(ms []api.Metric) []chart {
	ms = slices.DeleteFunc(slices.Clone(ms), func(m api.Metric) bool { return m.Kind != api.MetricNumber })
	var out []chart
	for i := 0; i < len(ms); {
		j := i
		for j < len(ms) && ms[j].Name == ms[i].Name {
			j++
		}
		series := ms[i:j]
		xs, ys := make([]float64, 0, len(series)), make([]float64, 0, len(series))
		steps := series[0].Step != series[len(series)-1].Step
		for _, m := range thin(len(series)) {
			x := float64(series[m].Step)
			if !steps { // every value at one step: in the order logged
				x = float64(m)
			}
			xs, ys = append(xs, x), append(ys, series[m].Value)
		}
		xLabel := "step"
		if !steps {
			xLabel = "value #"
		}
		last := series[len(series)-1]
		out = append(out, chart{Name: last.Name, SVG: lineSVG(last.Name, xs, ys, axes{X: xLabel, XTick: wholeTick}),
			Summary: fmt.Sprintf("%s: %d values, the last %s at step %d", last.Name, len(series), fmtNum(last.Value), last.Step)})
		i = j
	}
	return out
}

// otherMetric is the last value of a metric that is not a number (a
// string, a table row, JSON, an image's file), as text.
type otherMetric struct {
	Name, Kind, Value string
	Step              int64
	Count             int
}

// maxOtherLen bounds the text shown of such a value.
const maxOtherLen = 300

// otherMetrics lists the last value of each metric that is not a number.
func otherMetrics(ms []api.Metric) []otherMetric {
	var out []otherMetric
	for _, m := range ms {
		if m.Kind == api.MetricNumber {
			continue
		}
		v := m.Text
		if len(m.Data) > 0 {
			v = string(m.Data)
		}
		if len(v) > maxOtherLen {
			v = strings.ToValidUTF8(v[:maxOtherLen], "") + "…"
		}
		if n := len(out); n > 0 && out[n-1].Name == m.Name {
			out[n-1].Kind, out[n-1].Value, out[n-1].Step = m.Kind, v, m.Step
			out[n-1].Count++
			continue
		}
		out = append(out, otherMetric{Name: m.Name, Kind: m.Kind, Value: v, Step: m.Step, Count: 1})
	}
	return out
}

// thin picks at most maxPoints indexes of n, evenly, the first and the
// last always.
func thin(n int) []int {
	if n <= maxPoints {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	idx := make([]int, 0, maxPoints)
	for i := range maxPoints - 1 {
		idx = append(idx, i*(n-1)/(maxPoints-1))
	}
	return append(idx, n-1)
}

// nodeWindow is the least time a node chart spans: a cluster that just
// grew shows its step in the last minute, not across the whole width.
const nodeWindow = time.Minute

// nodeChart draws a target's node count over time as steps, up to now.
func nodeChart(hist []sample, now time.Time) chart {
	if len(hist) == 0 {
		return chart{Name: "nodes", Summary: "followed from now on"}
	}
	xs, ys := make([]float64, 0, 2*len(hist)+1), make([]float64, 0, 2*len(hist)+1)
	t0 := hist[0].At
	start := t0
	if w := now.Add(-nodeWindow); w.Before(start) {
		start = w
	}
	for i, s := range hist {
		x := s.At.Sub(start).Seconds()
		if i > 0 {
			xs, ys = append(xs, x), append(ys, float64(hist[i-1].Total()))
		}
		xs, ys = append(xs, x), append(ys, float64(s.Total()))
	}
	xs, ys = append(xs, math.Max(now.Sub(start).Seconds(), xs[len(xs)-1])), append(ys, ys[len(ys)-1])
	label := func(v float64) string {
		return start.Add(time.Duration(v * float64(time.Second))).UTC().Format("15:04:05")
	}
	last := hist[len(hist)-1]
	return chart{Name: "nodes", SVG: lineSVG("nodes", xs, ys, axes{X: "time (UTC)", XTick: label, MinX: 0, FromMinX: true, Counts: true}),
		Summary: fmt.Sprintf("%s now; followed since %s", plural(last.Total(), "node"), t0.UTC().Format("15:04:05"))}
}

// plural writes n things: "1 node", "2 nodes".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// axes say how lineSVG draws a chart's axes.
type axes struct {
	// X names the x axis; XTick writes its tick labels.
	X     string
	XTick func(float64) string
	// FromMinX starts the x axis at MinX instead of the first x.
	FromMinX bool
	MinX     float64
	// Counts draws whole numbers from 0, filled below the line: each
	// grid line a whole number.
	Counts bool
}

// lineSVG draws ys against xs with axes, a grid line at each round
// value and labels.
func lineSVG(title string, xs, ys []float64, ax axes) template.HTML {
	minX, maxX := xs[0], xs[len(xs)-1]
	if ax.FromMinX {
		minX = ax.MinX
	}
	minY, maxY := math.Inf(1), math.Inf(-1)
	for _, y := range ys {
		minY, maxY = math.Min(minY, y), math.Max(maxY, y)
	}
	if ax.Counts {
		minY, maxY = 0, math.Max(maxY, 1)
	}
	minY, maxY, stepY := niceRange(minY, maxY, ax.Counts)
	if maxX == minX {
		maxX = minX + 1
	}
	px := func(x float64) float64 { return padL + (x-minX)/(maxX-minX)*plotW }
	py := func(y float64) float64 { return padT + (1-(y-minY)/(maxY-minY))*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		chartW, chartH, template.HTMLEscapeString(title+" against "+ax.X))
	for i := 0; ; i++ {
		y := minY + float64(i)*stepY
		if y > maxY+stepY/2 {
			break
		}
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1"/>`, padL, chartW-padR, py(y), py(y), gridColor)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" font-size="11" fill="%s">%s</text>`, padL-6, py(y)+4, axisColor, template.HTMLEscapeString(fmtNum(y)))
	}
	for i := range 3 {
		x := minX + float64(i)*(maxX-minX)/2
		anchor := []string{"start", "middle", "end"}[i]
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="%s" font-size="11" fill="%s">%s</text>`, px(x), chartH-8, anchor, axisColor, template.HTMLEscapeString(ax.XTick(x)))
	}
	var pts strings.Builder
	for i := range xs {
		fmt.Fprintf(&pts, "%.1f,%.1f ", px(xs[i]), py(ys[i]))
	}
	if ax.Counts {
		fmt.Fprintf(&b, `<polygon points="%.1f,%.1f %s%.1f,%.1f" fill="%s"/>`, px(xs[0]), py(minY), pts.String(), px(xs[len(xs)-1]), py(minY), stepFillColor)
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.TrimSpace(pts.String()), lineColor)
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s"/>`, padL, padL, padT, padT+plotH, axisColor)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceRange widens [lo, hi] to round numbers and picks a round step
// between grid lines (1, 2 or 5 times a power of ten; whole numbers when
// whole is set), so that there are 3 to 6 of them.
func niceRange(lo, hi float64, whole bool) (float64, float64, float64) {
	if hi == lo {
		lo, hi = lo-1, hi+1
	}
	raw := (hi - lo) / 4
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * p
	for _, m := range []float64{1, 2, 5} {
		if m*p >= raw {
			step = m * p
			break
		}
	}
	if whole {
		step = math.Max(1, math.Round(step))
	}
	return math.Floor(lo/step) * step, math.Ceil(hi/step) * step, step
}

// wholeTick labels a step axis: steps are whole numbers.
func wholeTick(v float64) string { return fmtNum(math.Round(v)) }

// fmtNum writes an axis or metric value briefly.
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case v == math.Trunc(v) && a < 1e9:
		return fmt.Sprintf("%.0f", v)
	case a >= 1e5 || a < 1e-3:
		return fmt.Sprintf("%.3g", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.4f", v), "0"), ".")
}
