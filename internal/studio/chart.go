package studio

import (
	"fmt"
	"html/template"
	"math"
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

// metricCharts draws one line chart per metric name (ms are ordered by
// name, then step), value against step.
func metricCharts(ms []api.Metric) []chart {
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
		out = append(out, chart{Name: last.Name, SVG: lineSVG(last.Name, xs, ys, xLabel, fmtNum, false),
			Summary: fmt.Sprintf("%s: %d values, the last %s at step %d", last.Name, len(series), fmtNum(last.Value), last.Step)})
		i = j
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

// nodeChart draws a target's node count over time as steps, up to now.
func nodeChart(hist []sample, now time.Time) chart {
	if len(hist) == 0 {
		return chart{Name: "nodes", Summary: "no node has come or gone since the server started"}
	}
	xs, ys := make([]float64, 0, 2*len(hist)+1), make([]float64, 0, 2*len(hist)+1)
	t0 := hist[0].At
	for i, s := range hist {
		x := s.At.Sub(t0).Seconds()
		if i > 0 {
			xs, ys = append(xs, x), append(ys, float64(hist[i-1].Total()))
		}
		xs, ys = append(xs, x), append(ys, float64(s.Total()))
	}
	xs, ys = append(xs, math.Max(now.Sub(t0).Seconds(), xs[len(xs)-1])), append(ys, ys[len(ys)-1])
	label := func(v float64) string {
		return t0.Add(time.Duration(v * float64(time.Second))).UTC().Format("15:04:05")
	}
	last := hist[len(hist)-1]
	return chart{Name: "nodes", SVG: lineSVG("nodes", xs, ys, "time (UTC)", fmtNum, true, label),
		Summary: fmt.Sprintf("%d nodes now; %d changes since %s", last.Total(), len(hist), t0.UTC().Format("15:04:05"))}
}

// lineSVG draws ys against xs with axes, four grid lines and labels.
// xLabels, when given, writes the x axis' tick labels.
func lineSVG(title string, xs, ys []float64, xName string, yFmt func(float64) string, filled bool, xLabels ...func(float64) string) template.HTML {
	minX, maxX := xs[0], xs[len(xs)-1]
	minY, maxY := math.Inf(1), math.Inf(-1)
	for _, y := range ys {
		minY, maxY = math.Min(minY, y), math.Max(maxY, y)
	}
	if filled {
		minY = math.Min(minY, 0)
		maxY = math.Max(maxY, 1)
	}
	if maxY == minY {
		maxY, minY = maxY+1, minY-1
	}
	if maxX == minX {
		maxX = minX + 1
	}
	px := func(x float64) float64 { return padL + (x-minX)/(maxX-minX)*plotW }
	py := func(y float64) float64 { return padT + (1-(y-minY)/(maxY-minY))*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		chartW, chartH, template.HTMLEscapeString(title+" against "+xName))
	for i := range 5 {
		y := minY + float64(i)*(maxY-minY)/4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1"/>`, padL, chartW-padR, py(y), py(y), gridColor)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" font-size="11" fill="%s">%s</text>`, padL-6, py(y)+4, axisColor, template.HTMLEscapeString(yFmt(y)))
	}
	xl := fmtNum
	if len(xLabels) > 0 {
		xl = xLabels[0]
	}
	for i := range 3 {
		x := minX + float64(i)*(maxX-minX)/2
		anchor := []string{"start", "middle", "end"}[i]
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="%s" font-size="11" fill="%s">%s</text>`, px(x), chartH-8, anchor, axisColor, template.HTMLEscapeString(xl(x)))
	}
	var pts strings.Builder
	for i := range xs {
		fmt.Fprintf(&pts, "%.1f,%.1f ", px(xs[i]), py(ys[i]))
	}
	if filled {
		fmt.Fprintf(&b, `<polygon points="%.1f,%.1f %s%.1f,%.1f" fill="%s"/>`, px(xs[0]), py(minY), pts.String(), px(xs[len(xs)-1]), py(minY), stepFillColor)
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.TrimSpace(pts.String()), lineColor)
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s"/>`, padL, padL, padT, padT+plotH, axisColor)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

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
