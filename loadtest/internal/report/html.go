package report

import (
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The HTML report is one self-contained file: inline CSS and inline SVG charts, no script, no external
// resource. It is also well-formed XML (every element closed, no named entities), which the tests check
// with encoding/xml.

var phaseColor = map[string]string{
	"create":    "#1f77b4",
	"tti":       "#ff7f0e",
	"run_code":  "#2ca02c",
	"command":   "#9467bd",
	"kill":      "#7f7f7f",
	"lifecycle": "#17becf",
	"list":      "#8c564b",
}

func colorOf(phase string) string {
	if c, ok := phaseColor[phase]; ok {
		return c
	}
	return "#333333"
}

const css = `body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 9px;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6}td.l,th.l{text-align:left}.meta td{text-align:left}.bad{color:#c00}.muted{color:#777}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #e4e4e4;padding:6px}
svg text{font:11px system-ui,sans-serif;fill:#333}.sw{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}`

// WriteHTML writes the report as one self-contained HTML page.
func (r *Report) WriteHTML(w io.Writer) error {
	var b strings.Builder
	e := html.EscapeString
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>")
	fmt.Fprintf(&b, "<title>loadtest: %s</title><style>%s</style></head><body>\n", e(r.Name), css)
	fmt.Fprintf(&b, "<h1>loadtest: %s</h1>\n", e(r.Name))
	if r.Description != "" {
		fmt.Fprintf(&b, "<p class=\"muted\">%s</p>\n", e(r.Description))
	}
	b.WriteString("<table class=\"meta\">")
	row := func(k, v string) { fmt.Fprintf(&b, "<tr><th class=\"l\">%s</th><td>%s</td></tr>", e(k), e(v)) }
	row("target", r.APIURL+"  (sandboxes: "+r.SandboxURL+")")
	row("shape", r.ShapeText)
	row("template", r.Template)
	row("run_code", orNone(r.Code))
	row("command", orNone(r.Command))
	row("started", r.StartedAt.Format("2006-01-02 15:04:05 MST"))
	row("wall time", fmt.Sprintf("%.2f s", r.WallS))
	if r.Lifecycles.Started > 0 {
		row("lifecycles", fmt.Sprintf("%d ok of %d (%.1f%%), %.1f per second", r.Lifecycles.OK, r.Lifecycles.Started,
			100*r.Lifecycles.SuccessRate, r.Lifecycles.PerSecond))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Hold)) {
		row("hold: "+k, holdValue(r.Hold[k]))
	}
	if len(r.NotKilled) > 0 {
		row("not killed", fmt.Sprintf("%d sandboxes", len(r.NotKilled)))
	}
	b.WriteString("</table>\n")

	b.WriteString("<h2>Latency by phase</h2>\n<p class=\"muted\">Milliseconds, successful operations only; " +
		"tti = from the create request to the end of the first run_code result. Percentiles are nearest-rank.</p>\n")
	b.WriteString("<table><tr><th class=\"l\">phase</th><th>n</th><th>ok</th><th>success</th><th>min</th><th>p50</th>" +
		"<th>p90</th><th>p95</th><th>p99</th><th>max</th><th>mean</th><th>ok/s</th><th class=\"l\">errors</th></tr>\n")
	for _, p := range r.Phases {
		l := p.Latency
		var errs []string
		for _, k := range slices.Sorted(maps.Keys(p.Errors)) {
			errs = append(errs, fmt.Sprintf("%s × %d", k, p.Errors[k]))
		}
		cls := ""
		if p.Failed > 0 {
			cls = " class=\"bad\""
		}
		fmt.Fprintf(&b, "<tr><td class=\"l\"><span class=\"sw\" style=\"background:%s\"></span>%s</td><td>%d</td><td>%d</td><td%s>%.1f%%</td>"+
			"<td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.1f</td><td class=\"l\">%s</td></tr>\n",
			colorOf(p.Name), e(p.Name), p.Count, p.OK, cls, 100*p.SuccessRate,
			l.MinMs, l.P50Ms, l.P90Ms, l.P95Ms, l.P99Ms, l.MaxMs, l.MeanMs, p.PerSecond, e(strings.Join(errs, ", ")))
	}
	b.WriteString("</table>\n")
	for _, p := range r.Phases {
		for _, s := range p.ErrorSamples {
			fmt.Fprintf(&b, "<div class=\"bad\">%s: %s</div>\n", e(p.Name), e(s))
		}
	}

	b.WriteString("<h2>Timeline</h2>\n<p class=\"muted\">Each dot is one operation: x = when it started, " +
		"y = how long it took (log scale). Red crosses are failures.</p>\n")
	b.WriteString(r.legend())
	b.WriteString("<div class=\"chart\">")
	b.WriteString(r.timelineSVG(1100, 340))
	b.WriteString("</div>\n<p class=\"muted\">Completions per time slice (successful operations).</p>\n<div class=\"chart\">")
	b.WriteString(r.throughputSVG(1100, 200))
	b.WriteString("</div>\n")

	b.WriteString("<h2>Latency histograms</h2>\n<div class=\"charts\">")
	for _, p := range r.Phases {
		if len(p.Histogram) == 0 {
			continue
		}
		b.WriteString("<div class=\"chart\">")
		b.WriteString(histogramSVG(p, 520, 220))
		b.WriteString("</div>")
	}
	b.WriteString("</div>\n")

	fmt.Fprintf(&b, "<h2>Per %d-second window</h2>\n", int(WindowWidth.Seconds()))
	b.WriteString("<table><tr><th class=\"l\">phase</th><th>window (s)</th><th>ok</th><th>failed</th><th>ok/s</th><th>p50</th><th>p99</th><th>max</th></tr>\n")
	for _, pw := range r.Windows {
		for _, wd := range pw.Windows {
			fmt.Fprintf(&b, "<tr><td class=\"l\">%s</td><td>%g–%g</td><td>%d</td><td>%d</td><td>%.1f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td></tr>\n",
				e(pw.Phase), math.Round(wd.StartS*10)/10, math.Round(wd.EndS*10)/10, wd.OK, wd.Failed, wd.PerSecond, wd.LatencyP50, wd.LatencyP99, wd.LatencyMax)
		}
	}
	b.WriteString("</table>\n<p class=\"muted\">Generated by fleetbox loadtest. The JSON report holds the same data " +
		"(and the raw samples); <code>loadtest report -html</code> rebuilds this page from it.</p>\n</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// holdValue formats a hold observation; floats get at most three decimals.
func holdValue(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(math.Round(f*1000)/1000, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (r *Report) legend() string {
	var b strings.Builder
	b.WriteString("<div>")
	for _, p := range r.Phases {
		if p.Name == "lifecycle" {
			continue
		}
		fmt.Fprintf(&b, "<span class=\"sw\" style=\"background:%s\"></span>%s", colorOf(p.Name), html.EscapeString(p.Name))
	}
	b.WriteString("</div>\n")
	return b.String()
}

// axis helpers

type logAxis struct{ lo, hi float64 } // in ms, log10 scale

func newLogAxis(minMs, maxMs float64) logAxis {
	minMs = math.Max(minMs, 0.01)
	maxMs = math.Max(maxMs, minMs*10)
	return logAxis{lo: math.Pow(10, math.Floor(math.Log10(minMs))), hi: math.Pow(10, math.Ceil(math.Log10(maxMs)))}
}

// frac maps ms to 0..1 along the axis.
func (a logAxis) frac(ms float64) float64 {
	ms = math.Max(ms, a.lo)
	return (math.Log10(ms) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
}

// ticks returns 1-2-5 ticks within the axis.
func (a logAxis) ticks() []float64 {
	var out []float64
	for d := math.Pow(10, math.Floor(math.Log10(a.lo)+1e-9)); d <= a.hi*1.0001; d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if v := d * m; v >= a.lo*0.9999 && v <= a.hi*1.0001 {
				out = append(out, v)
			}
		}
	}
	return out
}

func msLabel(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%gs", ms/1000)
	case ms >= 1:
		return fmt.Sprintf("%gms", ms)
	}
	return fmt.Sprintf("%gµs", ms*1000)
}

func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

const (
	padL, padR, padT, padB = 64.0, 16.0, 14.0, 34.0
)

func svgOpen(b *strings.Builder, w, h int, label string) {
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">",
		w, h, w, h, html.EscapeString(label))
	fmt.Fprintf(b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>", w, h)
}

// timelineSVG plots every sample (at most 4,000 per phase, evenly thinned) as latency against start time.
func (r *Report) timelineSVG(w, h int) string {
	var b strings.Builder
	svgOpen(&b, w, h, "timeline")
	minMs, maxMs, maxT := math.Inf(1), 0.0, r.WallS*1000
	for _, p := range r.Phases {
		for _, s := range p.Samples {
			if p.Name == "lifecycle" {
				continue
			}
			minMs, maxMs = math.Min(minMs, math.Max(s[1], 0.01)), math.Max(maxMs, s[1])
			maxT = math.Max(maxT, s[0]+s[1])
		}
	}
	if maxMs == 0 {
		b.WriteString("<text x=\"20\" y=\"30\">no samples</text></svg>")
		return b.String()
	}
	ya := newLogAxis(minMs, maxMs)
	pw, ph := float64(w)-padL-padR, float64(h)-padT-padB
	x := func(ms float64) float64 { return padL + pw*ms/math.Max(maxT, 1) }
	y := func(ms float64) float64 { return padT + ph*(1-ya.frac(ms)) }
	for _, t := range ya.ticks() {
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eeeeee\"/>", padL, y(t), padL+pw, y(t))
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>", padL-6, y(t)+4, msLabel(t))
	}
	step := niceStep(maxT/1000, 10)
	for t := 0.0; t <= maxT/1000+1e-9; t += step {
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eeeeee\"/>", x(t*1000), padT, x(t*1000), padT+ph)
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%gs</text>", x(t*1000), padT+ph+16, t)
	}
	fmt.Fprintf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999999\"/>", padL, padT, pw, ph)
	fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">time since start</text>", padL+pw/2, h-2)
	for _, p := range r.Phases {
		if p.Name == "lifecycle" {
			continue
		}
		stride := max(1, len(p.Samples)/4000)
		fmt.Fprintf(&b, "<g fill=\"%s\" fill-opacity=\"0.55\">", colorOf(p.Name))
		var fails []([3]float64)
		for i := 0; i < len(p.Samples); i += stride {
			s := p.Samples[i]
			if s[2] == 0 {
				fails = append(fails, s)
				continue
			}
			fmt.Fprintf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\"/>", x(s[0]), y(s[1]))
		}
		b.WriteString("</g>")
		for _, s := range fails {
			cx, cy := x(s[0]), y(math.Max(s[1], ya.lo))
			fmt.Fprintf(&b, "<path d=\"M%.1f %.1fl6 6m0 -6l-6 6\" stroke=\"#cc0000\" stroke-width=\"1.5\"><title>%s failed after %.1f ms</title></path>",
				cx-3, cy-3, html.EscapeString(p.Name), s[1])
		}
	}
	b.WriteString("</svg>")
	return b.String()
}

// throughputSVG draws successful completions per slice (about 100 slices over the run) as lines per phase.
func (r *Report) throughputSVG(w, h int) string {
	var b strings.Builder
	svgOpen(&b, w, h, "throughput")
	maxT := r.WallS * 1000
	if maxT <= 0 {
		b.WriteString("<text x=\"20\" y=\"30\">no samples</text></svg>")
		return b.String()
	}
	slice := math.Max(niceStep(maxT, 40), 100) // ms
	if maxT >= 10000 {
		slice = math.Max(slice, 1000)
	}
	n := int(math.Ceil(maxT/slice)) + 1
	type line struct {
		name, color string
		c           []float64
	}
	var lines []line
	fails := make([]float64, n)
	peak := 1.0
	for _, p := range r.Phases {
		c := make([]float64, n)
		for _, s := range p.Samples {
			i := min(n-1, int((s[0]+s[1])/slice))
			if s[2] == 1 {
				c[i]++
			} else if p.Name != "lifecycle" {
				fails[i]++
			}
		}
		if p.Name != "create" && p.Name != "lifecycle" && p.Name != "run_code" && p.Name != "kill" {
			continue
		}
		lines = append(lines, line{p.Name, colorOf(p.Name), c})
	}
	lines = append(lines, line{"failures", "#cc0000", fails})
	for _, l := range lines {
		for i := range l.c {
			l.c[i] /= slice / 1000 // per second
			peak = math.Max(peak, l.c[i])
		}
	}
	pw, ph := float64(w)-padL-padR, float64(h)-padT-padB
	x := func(i int) float64 { return padL + pw*(float64(i)+0.5)*slice/math.Max(maxT, 1) }
	ystep := niceStep(peak, 4)
	top := math.Ceil(peak/ystep) * ystep
	y := func(v float64) float64 { return padT + ph*(1-v/top) }
	for v := 0.0; v <= top+1e-9; v += ystep {
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eeeeee\"/>", padL, y(v), padL+pw, y(v))
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g/s</text>", padL-6, y(v)+4, v)
	}
	tstep := niceStep(maxT/1000, 10)
	for t := 0.0; t <= maxT/1000+1e-9; t += tstep {
		xx := padL + pw*t*1000/maxT
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%gs</text>", xx, padT+ph+16, t)
	}
	fmt.Fprintf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999999\"/>", padL, padT, pw, ph)
	for li, l := range lines {
		var pts []string
		for i, v := range l.c {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
		}
		fmt.Fprintf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"%s\"><title>%s per second</title></polyline>",
			l.color, strings.Join(pts, " "), html.EscapeString(l.name))
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" style=\"fill:%s\">%s</text>", padL+8+float64(li)*90, padT+12, l.color, html.EscapeString(l.name))
	}
	fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">time since start (slices of %s)</text>", padL+pw/2, h-2, msLabel(slice))
	b.WriteString("</svg>")
	return b.String()
}

// histogramSVG draws one phase's log-bucketed latency histogram with its p50 and p99 marked.
func histogramSVG(p Phase, w, h int) string {
	var b strings.Builder
	svgOpen(&b, w, h, p.Name+" histogram")
	lo, hi := p.Histogram[0].LoMs, p.Histogram[len(p.Histogram)-1].HiMs
	xa := logAxis{lo: lo, hi: hi}
	pw, ph := float64(w)-padL-padR, float64(h)-padT-padB-14
	top := 1
	for _, bk := range p.Histogram {
		top = max(top, bk.Count)
	}
	x := func(ms float64) float64 { return padL + pw*xa.frac(ms) }
	y := func(c float64) float64 { return padT + 14 + ph*(1-c/float64(top)) }
	fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"12\" font-weight=\"bold\">%s (n=%d, p50 %.2f ms, p99 %.2f ms)</text>",
		padL, html.EscapeString(p.Name), p.Latency.Count, p.Latency.P50Ms, p.Latency.P99Ms)
	for _, c := range []float64{0, float64(top) / 2, float64(top)} {
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>", padL-6, y(c)+4, c)
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eeeeee\"/>", padL, y(c), padL+pw, y(c))
	}
	for _, bk := range p.Histogram {
		x0, x1 := x(bk.LoMs), x(bk.HiMs)
		fmt.Fprintf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s–%s: %d</title></rect>",
			x0+0.5, y(float64(bk.Count)), math.Max(x1-x0-1, 0.5), y(0)-y(float64(bk.Count)), colorOf(p.Name),
			msLabel(bk.LoMs), msLabel(bk.HiMs), bk.Count)
	}
	for _, tk := range xa.ticks() {
		if tk < lo*0.999 || tk > hi*1.001 {
			continue
		}
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999999\"/>", x(tk), y(0), x(tk), y(0)+4)
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>", x(tk), y(0)+15, msLabel(tk))
	}
	for _, m := range []struct {
		name string
		ms   float64
	}{{"p50", p.Latency.P50Ms}, {"p99", p.Latency.P99Ms}} {
		if m.ms <= 0 {
			continue
		}
		xx := x(m.ms)
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>", xx, y(float64(top)), xx, y(0))
		tx, anchor := xx+3, "start"
		if xx > padL+pw-30 {
			tx, anchor = xx-3, "end"
		}
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" style=\"fill:#d62728\">%s</text>", tx, y(float64(top))+10, anchor, m.name)
	}
	fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">latency (log scale)</text>", padL+pw/2, h-2)
	b.WriteString("</svg>")
	return b.String()
}
