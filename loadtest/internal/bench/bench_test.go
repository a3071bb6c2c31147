package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/loadtest/internal/load"
	"fleetbox.dev/loadtest/internal/report"
	"fleetbox.dev/loadtest/internal/stats"
)

func fakeRun(name string, shape load.Shape, createMs float64, n int, failed int) *report.Report {
	var ops []load.Op
	for i := 0; i < n; i++ {
		s := stats.Sample{Start: time.Duration(i) * 10 * time.Millisecond, Dur: time.Duration(createMs * 1e6), OK: i >= failed}
		kind := ""
		if !s.OK {
			kind = "http 500"
		}
		ops = append(ops, load.Op{Phase: load.PhaseCreate, Sample: s, Kind: kind},
			load.Op{Phase: load.PhaseLifecycle, Sample: stats.Sample{Start: s.Start, Dur: 2 * s.Dur, OK: s.OK}, Kind: kind})
		if s.OK {
			ops = append(ops, load.Op{Phase: load.PhaseTTI, Sample: stats.Sample{Start: s.Start, Dur: 2 * s.Dur, OK: true}})
		}
	}
	return report.Build(report.Meta{Name: name, Shape: shape}, ops, &load.Result{Hold: map[string]any{}})
}

func sampleResults() *Results {
	idle := fakeRun("idle", load.Shape{Kind: load.Idle, N: 1000}, 30, 10, 0)
	idle.Hold = map[string]any{"requested": 1000, "created": 1000, "listed_running": 1000, "all_running": true,
		"create_rate_per_s": 80.0, "worker_rss_mib": 120.5, "descendants_pss_mib": 7000.0, "worker_descendants": 2000}
	res := &Results{
		Date:    time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Machine: Machine{NProc: 2, Kernel: "linux 6", GoVersion: "go1.26.8", Python: "/usr/bin/python3 (Python 3.11)"},
		Python:  stats.Summary{Count: 200, P50Ms: 10, P99Ms: 20},
		NATS:    stats.Summary{Count: 5000, P50Ms: 0.1, P99Ms: 0.3},
		Runs: map[string]*report.Report{
			"sequential": fakeRun("sequential", load.Shape{Kind: load.Sequential, N: 10}, 8, 10, 0),
			"c50":        fakeRun("c50", load.Shape{Kind: load.Concurrent, Concurrency: 50}, 200, 10, 1),
			"tti":        fakeRun("tti", load.Shape{Kind: load.Sequential, N: 10}, 20, 10, 0),
			"idle":       idle,
		},
		CPU:       map[string]CPUUse{"c50": {Sandboxes: 9, Wall: time.Second, APIServer: 18 * time.Millisecond, Worker: 45 * time.Millisecond, Kids: 90 * time.Millisecond}},
		LoadStart: "0.10 0.20 0.30",
	}
	res.Rows = rows(res)
	return res
}

func TestRows(t *testing.T) {
	res := sampleResults()
	byMetric := map[string]Row{}
	for _, r := range res.Rows {
		byMetric[r.Metric] = r
	}
	check := func(prefix string, want bool) {
		t.Helper()
		for m, r := range byMetric {
			if strings.HasPrefix(m, prefix) {
				if r.Pass == nil || *r.Pass != want {
					t.Errorf("%s: pass = %v, want %v (%+v)", m, r.Pass, want, r)
				}
				return
			}
		}
		t.Errorf("no row %q", prefix)
	}
	check("create p50, concurrency 1", true) // 8 ms ≤ 20
	check("create p99, concurrency 50", false)
	check("time to interactive p50", true) // 40 ms ≤ 60
	check("idle sandboxes held", true)
	check("errors in c50", false)
	if r := byMetric["create p50, concurrency 1 (n=10)"]; r.VsPython != "0.80×" || r.VsNATS != "80×" {
		t.Errorf("ratios %+v", r)
	}
}

func TestWriteMarkdownKeepsHandWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	res := sampleResults()
	if err := writeMarkdown(path, res); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	for _, want := range []string{"# Benchmarks", BeginMarker, EndMarker, "What limits each figure", "| c50 | 9 |", "17.0 ms", "118 /s"} {
		if !strings.Contains(s, want) {
			t.Errorf("new file lacks %q:\n%s", want, s)
		}
	}
	edited := strings.Replace(s, "(Hand-written after a run", "My analysis. (Hand-written after a run", 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	res.Python.P50Ms = 5
	res.Rows = rows(res)
	if err := writeMarkdown(path, res); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	s = string(b)
	if !strings.Contains(s, "My analysis.") || strings.Count(s, BeginMarker) != 1 || !strings.Contains(s, "| 5.00 ms |") {
		t.Errorf("re-run lost the hand-written part or did not replace the table:\n%s", s)
	}
	if strings.Contains(s, "figures are pessimistic") {
		t.Error("a quiet machine was called busy")
	}
}
