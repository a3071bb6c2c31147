package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"fleetbox.dev/loadtest/internal/report"
)

// Row is one line of the results table.
type Row struct {
	Metric string
	Value  string
	Target string
	Pass   *bool // nil: no target
	// Ratios to the baselines: a latency divided by the Python start p50 / the NATS round trip p50; a rate
	// as a share of the machine's Python-start capacity (nproc ÷ Python start p50).
	VsPython, VsNATS string
}

func pass(ok bool) *bool { return &ok }

func rows(res *Results) []Row {
	var out []Row
	py, nats := res.Python.P50Ms, res.NATS.P50Ms
	lat := func(metric string, ms float64, target float64, hasTarget bool) {
		r := Row{Metric: metric, Value: fmt.Sprintf("%.2f ms", ms)}
		if hasTarget {
			r.Target = fmt.Sprintf("≤ %.0f ms", target)
			r.Pass = pass(ms > 0 && ms <= target)
		}
		if py > 0 {
			r.VsPython = fmt.Sprintf("%.2f×", ms/py)
		}
		if nats > 0 {
			r.VsNATS = fmt.Sprintf("%.0f×", ms/nats)
		}
		out = append(out, r)
	}
	rate := func(metric string, perS float64, target float64) {
		r := Row{Metric: metric, Value: fmt.Sprintf("%.1f /s", perS)}
		if target > 0 {
			r.Target = fmt.Sprintf("≥ %.0f /s", target)
			r.Pass = pass(perS >= target)
		}
		if py > 0 {
			capacity := float64(res.Machine.NProc) * 1000 / py
			r.VsPython = fmt.Sprintf("%.0f%% of %.0f spawns/s", 100*perS/capacity, capacity)
		}
		out = append(out, r)
	}
	phase := func(run, ph string) *report.Phase {
		if r := res.Runs[run]; r != nil {
			return r.Phase(ph)
		}
		return nil
	}
	success := func(run string) string {
		r := res.Runs[run]
		if r == nil {
			return ""
		}
		var parts []string
		for _, p := range r.Phases {
			if p.Failed > 0 {
				parts = append(parts, fmt.Sprintf("%s %d/%d failed", p.Name, p.Failed, p.Count))
			}
		}
		return strings.Join(parts, ", ")
	}
	if p := phase("sequential", "create"); p != nil {
		lat(fmt.Sprintf("create p50, concurrency 1 (n=%d)", p.Count), p.Latency.P50Ms, 20, true)
		lat("create p99, concurrency 1", p.Latency.P99Ms, 60, true)
	}
	if p := phase("sequential", "kill"); p != nil {
		lat("kill p50, concurrency 1", p.Latency.P50Ms, 0, false)
	}
	if p := phase("burst50", "create"); p != nil {
		lat(fmt.Sprintf("create p99, bursts of %d (n=%d)", res.Runs["burst50"].Shape.N, p.Count), p.Latency.P99Ms, 150, true)
	}
	if p := phase("c50", "create"); p != nil {
		lat(fmt.Sprintf("create p99, concurrency %d sustained (n=%d)", res.Runs["c50"].Shape.Concurrency, p.Count), p.Latency.P99Ms, 150, true)
		rate("creates per second at that concurrency", p.PerSecond, 0)
	}
	if p := phase("tti", "tti"); p != nil {
		lat("time to interactive p50 (create + first 1+1)", p.Latency.P50Ms, 60, true)
		lat("time to interactive p99", p.Latency.P99Ms, 0, false)
	}
	if p := phase("tti", "run_code"); p != nil {
		lat("first run_code 1+1 p50 (right after create)", p.Latency.P50Ms, 0, false)
	}
	if p := phase("command", "command"); p != nil {
		if p.OK > 0 {
			lat(fmt.Sprintf("command `true` through envd process.Process/Start p50 (n=%d)", p.OK), p.Latency.P50Ms, 0, false)
		} else {
			var kinds []string
			for k := range p.Errors {
				kinds = append(kinds, k)
			}
			slices.Sort(kinds)
			out = append(out, Row{Metric: "command `true` through envd process.Process/Start",
				Value: "not served by this build (" + strings.Join(kinds, ", ") + ")"})
		}
	}
	if r := res.Runs["churn"]; r != nil {
		rate(fmt.Sprintf("full lifecycles per second (create, 1+1, kill), concurrency %d, %.0f s", res.ChurnC, r.WallS), r.Lifecycles.PerSecond, 100)
		if p := r.Phase("create"); p != nil {
			lat("create p99 during that churn", p.Latency.P99Ms, 0, false)
		}
	}
	if r := res.Runs["poisson"]; r != nil {
		if p := r.Phase("create"); p != nil {
			lat(fmt.Sprintf("create p99, Poisson %.0f/s open loop", r.Shape.Rate), p.Latency.P99Ms, 0, false)
		}
	}
	if r := res.Runs["idle"]; r != nil {
		h := r.Hold
		all, _ := h["all_running"].(bool)
		out = append(out, Row{Metric: "idle sandboxes held on one worker (listed running / requested)",
			Value:  fmt.Sprintf("%v / %v", h["listed_running"], h["requested"]),
			Target: "1,000 all running", Pass: pass(all && toInt(h["requested"]) >= 1000)})
		if v, ok := h["create_rate_per_s"].(float64); ok {
			rate("create rate while filling (concurrency 50)", v, 0)
		}
		if v, ok := h["worker_rss_mib"]; ok {
			out = append(out, Row{Metric: "worker RSS with them held", Value: fmt.Sprintf("%v MiB", v)})
		}
		if v, ok := h["descendants_pss_mib"]; ok {
			per := 0.0
			if n := toInt(h["created"]); n > 0 {
				per = toFloat(v) / float64(n)
			}
			out = append(out, Row{Metric: fmt.Sprintf("sandbox processes' PSS (%v processes)", h["worker_descendants"]),
				Value: fmt.Sprintf("%v MiB (%.1f MiB per sandbox)", v, per)})
		}
		if p := r.Phase("run_code"); p != nil {
			lat(fmt.Sprintf("1+1 in %d of them, p50", p.Count), p.Latency.P50Ms, 0, false)
		}
		if p := r.Phase("list"); p != nil {
			lat("listing them (all pages)", p.Latency.P50Ms, 0, false)
		}
	}
	for _, run := range []string{"sequential", "burst50", "c50", "tti", "command", "churn", "poisson", "idle"} {
		if p := phase(run, "command"); run == "command" && p != nil && p.OK == 0 {
			continue // reported above as not served
		}
		if s := success(run); s != "" {
			out = append(out, Row{Metric: "errors in " + run, Value: s, Pass: pass(false), Target: "none"})
		}
	}
	return out
}

func toInt(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case float64:
		return int(x)
	}
	return 0
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	return 0
}

// Markers delimit the generated part of BENCHMARKS.md.
const (
	BeginMarker = "<!-- BEGIN GENERATED by `make bench` (loadtest bench); edits between these markers are overwritten -->"
	EndMarker   = "<!-- END GENERATED -->"
)

func markdown(res *Results) string {
	var b strings.Builder
	m := res.Machine
	fmt.Fprintf(&b, "%s\n\n", BeginMarker)
	fmt.Fprintf(&b, "Run of %s on %d CPUs (%s), %s, kernel %s, %s, Python %s, commit %s.\n",
		res.Date.Format("2006-01-02 15:04 MST"), m.NProc, orDash(m.CPU), orDash(m.MemTotal), orDash(m.Kernel), m.GoVersion, orDash(m.Python), orDash(m.Commit))
	b.WriteString("Everything on loopback, the client on the same machine: apiserver with embedded NATS, one worker on the `process` runtime, " +
		"sandboxes from template `base`. Create is timed to its `201`; time to interactive from the create request to the end of the first " +
		"`run_code` stream. Percentiles are nearest-rank. No pre-warmed pools (they do not exist yet), so every figure is a cold create.\n\n")
	fmt.Fprintf(&b, "Load average before the bench %s, after %s", orDash(res.LoadStart), orDash(res.LoadEnd))
	if l := firstLoad(res.LoadStart); l > 0.5*float64(res.Machine.NProc) {
		b.WriteString(" (**the machine was busy when the bench started**)")
	}
	var others, all time.Duration
	for _, u := range res.CPU {
		others += u.Others
		all += u.Wall * time.Duration(res.Machine.NProc)
	}
	if all > 0 && float64(others)/float64(all) > 0.05 {
		fmt.Fprintf(&b, "; other processes used %.0f%% of the CPUs during the shapes (see the CPU table): **the figures are pessimistic**", 100*float64(others)/float64(all))
	}
	b.WriteString(".\n\nBaselines on the same machine, same run:\n\n")
	b.WriteString("| baseline | n | p50 | p99 |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| `%s -c pass` (spawn to exit) | %d | %.2f ms | %.2f ms |\n", pyName(m.Python), res.Python.Count, res.Python.P50Ms, res.Python.P99Ms)
	fmt.Fprintf(&b, "| NATS request/reply, 64 B, two TCP clients of the apiserver's embedded server | %d | %.3f ms | %.3f ms |\n", res.NATS.Count, res.NATS.P50Ms, res.NATS.P99Ms)
	fmt.Fprintf(&b, "| HTTP POST → 204 on loopback, the load tester's client | %d | %.3f ms | %.3f ms |\n\n", res.HTTP.Count, res.HTTP.P50Ms, res.HTTP.P99Ms)
	b.WriteString("| metric | value | target | | ÷ Python start p50 | ÷ NATS RTT p50 |\n|---|---:|---|---|---:|---:|\n")
	for _, r := range res.Rows {
		mark := ""
		if r.Pass != nil {
			mark = "**miss**"
			if *r.Pass {
				mark = "pass"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.Metric, r.Value, orDash(r.Target), mark, orDash(r.VsPython), orDash(r.VsNATS))
	}
	if len(res.CPU) > 0 {
		b.WriteString("\nWhere the CPU goes (from /proc/PID/stat around each shape; \"sandbox processes\" are the kernels and holders the worker " +
			"reaped; the load tester runs on the same cores). The ceiling is what the machine could do if CPU were the only limit: " +
			"nproc × 1000 ÷ total CPU ms per sandbox. \"Other processes\" is CPU the rest of the machine used during the shape, as a share of all CPUs: " +
			"above a few percent, the shape's latencies were measured on a shared machine.\n\n")
		b.WriteString("| shape | sandboxes | apiserver | worker | sandbox processes | load tester | total CPU per sandbox | CPU busy (ours) | other processes | CPU-bound ceiling |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, name := range []string{"sequential", "burst50", "c50", "tti", "churn", "poisson", "idle"} {
			u, ok := res.CPU[name]
			if !ok || u.Sandboxes == 0 {
				continue
			}
			per := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6/float64(u.Sandboxes)) }
			tot := float64(u.Total()) / 1e6 / float64(u.Sandboxes)
			capacity := float64(u.Wall) * float64(res.Machine.NProc)
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %.1f ms | %.0f%% | %.0f%% | %.0f /s |\n", name, u.Sandboxes,
				per(u.APIServer), per(u.Worker), per(u.Kids), per(u.Client), tot, 100*float64(u.Total())/capacity,
				100*float64(u.Others)/capacity, float64(res.Machine.NProc)*1000/tot)
		}
	}
	if len(res.Sweep) > 0 {
		b.WriteString("\nChurn sweep (full lifecycles per second by concurrency, a few seconds each): ")
		var parts []string
		for _, p := range res.Sweep {
			parts = append(parts, fmt.Sprintf("c=%d → %.1f/s (create p99 %.0f ms)", p.Concurrency, p.LifecyclesPerS, p.CreateP99Ms))
		}
		b.WriteString(strings.Join(parts, "; ") + ".\n")
	}
	b.WriteString("\nPer-shape JSON and HTML reports (histograms, timeline, 10-second windows) are in `bin/bench/` after `make bench`.\n")
	if res.StopError != "" {
		fmt.Fprintf(&b, "\n**The system did not stop cleanly:** %s\n", res.StopError)
	}
	fmt.Fprintf(&b, "\n%s\n", EndMarker)
	return b.String()
}

func firstLoad(s string) float64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func pyName(s string) string {
	name, _, _ := strings.Cut(s, " ")
	return orDash(name)
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

const header = "# Benchmarks\n\n`make bench` builds fleetbox, starts it on loopback ports with a temporary data directory, measures the " +
	"baselines and the shapes below in one run, stops everything, and rewrites the generated section of this file. It takes " +
	"about three minutes on 2 cores. Targets are this project's goals (see shared/reference/anchors.md for where they come from).\n\n"

const handWritten = "\n## What limits each figure\n\n(Hand-written after a run: what the profile and the measurements say, and the next step.)\n"

// writeMarkdown replaces the generated block of path (creating the file if needed) and keeps the rest.
func writeMarkdown(path string, res *Results) error {
	gen := markdown(res)
	old, err := os.ReadFile(path)
	var out string
	switch {
	case err == nil && strings.Contains(string(old), BeginMarker) && strings.Contains(string(old), EndMarker):
		s := string(old)
		i := strings.Index(s, BeginMarker)
		j := strings.Index(s, EndMarker) + len(EndMarker)
		out = s[:i] + strings.TrimSuffix(gen, "\n") + s[j:]
	case err == nil && len(old) > 0:
		out = string(old) + "\n" + gen
	default:
		out = header + gen + handWritten
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
