package main

// The smoke tests build the real binaries (apiserver, worker and this command) and run them as processes on
// loopback ports, the way loadtest/e2e does, then drive them with `loadtest run` and `loadtest bench -quick`.
// They are skipped under -short.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/loadtest/internal/bench"
	"fleetbox.dev/loadtest/internal/report"
	"fleetbox.dev/loadtest/internal/system"
)

func TestMain(m *testing.M) {
	code := m.Run()
	system.AfterTests()
	os.Exit(code)
}

type binaries struct{ apiserver, worker, loadtest string }

// buildBinaries builds the three binaries from the workspace, once per test binary (see system.BuildOnce).
func buildBinaries(t *testing.T) binaries {
	t.Helper()
	fleet, err := system.BuildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	lt, err := system.BuildOnce("./loadtest/cmd/loadtest")
	if err != nil {
		t.Fatal(err)
	}
	return binaries{fleet.APIServer, fleet.Worker, lt[0]}
}

func python() string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return ""
}

func TestSmokeAgainstRealSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the smoke test builds and starts the apiserver and the worker")
	}
	b := buildBinaries(t)
	sys, err := system.Start(t.Context(), system.Config{APIServer: b.apiserver, Worker: b.worker, Capacity: 32, Python: python(),
		LogLevel: "warn", Name: "smoke", Watchdog: true, Log: tlog{t}})
	if err != nil {
		t.Fatalf("start fleetbox: %v", err)
	}
	t.Cleanup(func() { _ = sys.Stop(true) }) // after a failure; a no-op after the Stop below
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "smoke.json")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"-profile", "smoke", "-json", jsonPath, "-html", filepath.Join(dir, "smoke.html")},
		{"-shape", "burst", "-n", "8", "-code", "x = 41\nx + 1"},
		{"-shape", "poisson", "-rate", "20", "-duration", "1s", "-dwell", "100ms"},
		{"-shape", "idle", "-n", "12", "-c", "4", "-sample", "2"},
	} {
		args = append([]string{"run", "-url", sys.APIURL, "-timeout", "20s", "-min-success", "1"}, args...)
		cmd := exec.CommandContext(ctx, b.loadtest, args...)
		cmd.Env = append(os.Environ(), "E2B_API_KEY="+sys.APIKey)
		out, err := cmd.CombinedOutput()
		t.Logf("loadtest %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("loadtest %v: %v", args, err)
		}
	}
	f, err := os.Open(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := report.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lifecycles.OK != 5 || rep.Lifecycles.SuccessRate != 1 {
		t.Errorf("smoke lifecycles %+v", rep.Lifecycles)
	}
	if tti := rep.Phase("tti"); tti == nil || tti.OK != 5 || tti.Latency.P50Ms <= rep.Phase("create").Latency.P50Ms {
		t.Errorf("tti %+v should be measured for every sandbox and exceed the create", tti)
	}
	if err := sys.Stop(t.Failed()); err != nil {
		t.Errorf("stop (and leak check): %v", err)
	}
}

// tlog writes to the test's log.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestBenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the bench starts the apiserver and the worker")
	}
	b := buildBinaries(t)
	dir := t.TempDir()
	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := os.WriteFile(md, []byte("# Benchmarks\n\n"+bench.BeginMarker+"\nold\n"+bench.EndMarker+"\n\n## Hand-written\n\nkeep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.loadtest, "bench", "-quick", "-apiserver", b.apiserver, "-worker", b.worker,
		"-capacity", "100", "-out", md, "-reports", filepath.Join(dir, "reports"))
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("bench -quick: %v", err)
	}
	got, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	s := string(got)
	for _, want := range []string{"keep me", "create p50, concurrency 1", "python3 -c pass", "NATS request/reply", "÷ NATS RTT p50", "idle sandboxes held"} {
		if !strings.Contains(s, want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "\nold\n") || strings.Count(s, bench.BeginMarker) != 1 {
		t.Errorf("the generated block was not replaced exactly once:\n%s", s)
	}
	for _, f := range []string{"churn.json", "churn.html", "idle.json"} {
		if _, err := os.Stat(filepath.Join(dir, "reports", f)); err != nil {
			t.Errorf("report %s: %v", f, err)
		}
	}
}
