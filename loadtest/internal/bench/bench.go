// Package bench is `loadtest bench`: it starts a fleetbox deployment on loopback (apiserver with embedded
// NATS and one worker, from prebuilt binaries), measures the machine's baselines (a Python interpreter
// start, a NATS request/reply round trip, a loopback HTTP round trip), runs a fixed set of shapes against
// the deployment, stops everything, and writes the results as a table of absolute numbers, targets and
// ratios to the baselines into BENCHMARKS.md (between markers, so the hand-written analysis below them
// survives a re-run). Each shape's JSON and HTML reports are written next to it.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fleetbox.dev/loadtest/internal/baseline"
	"fleetbox.dev/loadtest/internal/client"
	"fleetbox.dev/loadtest/internal/load"
	"fleetbox.dev/loadtest/internal/report"
	"fleetbox.dev/loadtest/internal/stats"
	"fleetbox.dev/loadtest/internal/system"
	"fleetbox.dev/schema/e2b"
)

// Config is one bench run.
type Config struct {
	APIServer, Worker string // binaries
	Python            string // interpreter for the spawn baseline and the worker's sandboxes
	Capacity          int    // worker -capacity
	Out               string // BENCHMARKS.md
	ReportsDir        string // per-shape JSON and HTML reports
	Idle              int    // sandboxes of the idle shape
	ChurnDuration     time.Duration
	Quick             bool // smaller shapes (a few seconds), for tests of the bench itself
	Log               io.Writer
}

// Results is everything a bench run measured.
type Results struct {
	Date      time.Time
	Machine   Machine
	Python    stats.Summary
	NATS      stats.Summary
	HTTP      stats.Summary
	Runs      map[string]*report.Report
	Sweep     []SweepPoint
	ChurnC    int
	Rows      []Row
	CPU       map[string]CPUUse // by run name
	LoadStart string            // /proc/loadavg before the bench
	LoadEnd   string
	StopError string
}

// CPUUse is the CPU time the components spent during one run, from /proc/PID/stat. Sandboxes is what the
// worker's reaped children (kernels, holders) used: it counts the sandboxes killed within the run.
type CPUUse struct {
	Sandboxes                       int // sandboxes created in the run
	Wall                            time.Duration
	APIServer, Worker, Kids, Client time.Duration
	// Others is the CPU the rest of the machine used meanwhile (all CPUs' busy time minus ours): work that
	// competed with the system under test and makes its figures pessimistic.
	Others time.Duration
}

// Total is the CPU time of everything.
func (u CPUUse) Total() time.Duration { return u.APIServer + u.Worker + u.Kids + u.Client }

// SweepPoint is one concurrency tried while looking for the most lifecycles per second.
type SweepPoint struct {
	Concurrency    int
	LifecyclesPerS float64
	CreateP99Ms    float64
}

// Run runs the bench and writes its outputs.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Idle == 0 {
		cfg.Idle = 1000
	}
	if cfg.ChurnDuration == 0 {
		cfg.ChurnDuration = 20 * time.Second
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = cfg.Idle + 200
	}
	if err := os.MkdirAll(cfg.ReportsDir, 0o755); err != nil {
		return nil, err
	}
	res := &Results{Date: time.Now(), Machine: machineFacts(cfg.Python), Runs: map[string]*report.Report{}, CPU: map[string]CPUUse{},
		LoadStart: loadavg()}
	logf := func(format string, a ...any) { fmt.Fprintf(cfg.Log, "bench: "+format+"\n", a...) }

	logf("starting apiserver and worker (capacity %d)", cfg.Capacity)
	sys, err := system.Start(ctx, system.Config{APIServer: cfg.APIServer, Worker: cfg.Worker, Capacity: cfg.Capacity, Python: cfg.Python,
		LogLevel: "warn", Name: "bench", Log: cfg.Log})
	if err != nil {
		return nil, fmt.Errorf("start the system: %w", err)
	}
	runErr := measure(ctx, cfg, sys, res, logf)
	res.LoadEnd = loadavg()
	logf("stopping the system")
	if err := sys.Stop(runErr != nil); err != nil {
		res.StopError = err.Error()
		logf("stop: %v", err)
	}
	if runErr != nil {
		return res, runErr
	}
	res.Rows = rows(res)
	if err := writeMarkdown(cfg.Out, res); err != nil {
		return res, err
	}
	logf("wrote %s and the reports in %s", cfg.Out, cfg.ReportsDir)
	if res.StopError != "" {
		return res, fmt.Errorf("the system did not stop cleanly: %s", res.StopError)
	}
	return res, nil
}

func measure(ctx context.Context, cfg Config, sys *system.System, res *Results, logf func(string, ...any)) error {
	n := func(full, quick int) int {
		if cfg.Quick {
			return quick
		}
		return full
	}
	d := func(full, quick time.Duration) time.Duration {
		if cfg.Quick {
			return quick
		}
		return full
	}

	// Baselines first, while the machine is quiet.
	logf("baseline: %s -c pass ×%d", cfg.Python, n(200, 20))
	py, err := baseline.PythonSpawn(ctx, cfg.Python, n(200, 20))
	if err != nil {
		return fmt.Errorf("python baseline: %w", err)
	}
	res.Python = stats.Summarize(py)
	logf("baseline: NATS request/reply ×%d on the apiserver's embedded server", n(5000, 500))
	nr, err := baseline.NATSRoundTrip(ctx, sys.NATSURL, n(5000, 500))
	if err != nil {
		return fmt.Errorf("NATS baseline: %w", err)
	}
	res.NATS = stats.Summarize(nr)
	hr, err := baseline.HTTPRoundTrip(ctx, n(5000, 500))
	if err != nil {
		return fmt.Errorf("HTTP baseline: %w", err)
	}
	res.HTTP = stats.Summarize(hr)

	run := func(name, desc string, shape load.Shape, code string, onHold func(context.Context, []e2b.Sandbox) map[string]any) (*report.Report, error) {
		conns := shape.MaxInFlight()
		c := client.New(sys.APIURL, sys.APIURL, sys.APIKey, 30*time.Second, conns)
		defer c.CloseIdle()
		rec := load.NewRecorder()
		cpu0 := cpuNow(sys)
		started := time.Now()
		r, err := load.Run(ctx, load.Config{
			Client: c, Template: "base", SandboxTimeout: 120, Code: code, Shape: shape, Seed: 1,
			RunID: "bench-" + name, MaxTime: 3 * time.Minute, OnHold: onHold,
		}, rec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		use := cpuNow(sys).sub(cpu0)
		use.Wall = time.Since(started)
		rep := report.Build(report.Meta{Name: name, Description: desc, APIURL: sys.APIURL, SandboxURL: sys.APIURL,
			Template: "base", Code: code, Shape: shape, StartedAt: started}, rec.Ops(), r)
		if err := saveReport(cfg.ReportsDir, rep); err != nil {
			return nil, err
		}
		if p := rep.Phase("create"); p != nil {
			use.Sandboxes = p.OK
		}
		res.CPU[name] = use
		if p := rep.Phase("create"); p != nil {
			logf("%-10s %-44s create p50 %6.2f ms p99 %7.2f ms, %d/%d ok, %.1f lifecycles/s",
				name, rep.ShapeText, p.Latency.P50Ms, p.Latency.P99Ms, p.OK, p.Count, rep.Lifecycles.PerSecond)
		}
		return rep, nil
	}
	type step struct {
		name, desc string
		shape      load.Shape
		code       string
	}
	steps := []step{
		{"warmup", "warm-up (not reported)", load.Shape{Kind: load.Sequential, N: n(20, 3)}, "1+1"},
		{"sequential", "create+kill one at a time", load.Shape{Kind: load.Sequential, N: n(200, 10)}, ""},
		{"burst50", "50 creates at once, 4 rounds 1 s apart, create+kill", load.Shape{Kind: load.Burst, N: n(50, 10), Rounds: 4, Pause: d(time.Second, 100*time.Millisecond)}, ""},
		{"c50", "50 concurrent create+kill loops", load.Shape{Kind: load.Concurrent, Concurrency: n(50, 10), Duration: d(10*time.Second, 2*time.Second)}, ""},
		{"tti", "create + 1+1 + kill, one at a time", load.Shape{Kind: load.Sequential, N: n(100, 10)}, "1+1"},
	}
	for _, s := range steps {
		rep, err := run(s.name, s.desc, s.shape, s.code, nil)
		if err != nil {
			return err
		}
		res.Runs[s.name] = rep
	}
	// envd's process.Process/Start (commands.run('true')): served by newer builds only; a build without it
	// answers every command with an error, which the table reports as "not served" instead of failing.
	cmdRun, err := runCommandShape(ctx, sys, cfg, n(50, 5))
	if err != nil {
		return err
	}
	res.Runs["command"] = cmdRun

	// Churn: find the concurrency with the most full lifecycles per second, then hold it.
	best, bestRate := 0, -1.0
	for _, c := range []int{2, 4, 8, 16, 32} {
		if cfg.Quick && c > 4 {
			break
		}
		rep, err := run(fmt.Sprintf("sweep-c%d", c), "churn sweep", load.Shape{Kind: load.Concurrent, Concurrency: c, Duration: d(4*time.Second, time.Second)}, "1+1", nil)
		if err != nil {
			return err
		}
		pt := SweepPoint{Concurrency: c, LifecyclesPerS: rep.Lifecycles.PerSecond}
		if p := rep.Phase("create"); p != nil {
			pt.CreateP99Ms = p.Latency.P99Ms
		}
		res.Sweep = append(res.Sweep, pt)
		if pt.LifecyclesPerS > bestRate && rep.Lifecycles.SuccessRate == 1 {
			best, bestRate = c, pt.LifecyclesPerS
		}
	}
	if best == 0 {
		return fmt.Errorf("churn sweep: no concurrency ran without errors")
	}
	res.ChurnC = best
	rep, err := run("churn", fmt.Sprintf("full lifecycles (create, 1+1, kill) at concurrency %d, the best of the sweep", best),
		load.Shape{Kind: load.Concurrent, Concurrency: best, Duration: d(cfg.ChurnDuration, 2*time.Second)}, "1+1", nil)
	if err != nil {
		return err
	}
	res.Runs["churn"] = rep

	rate := max(5, bestRate/2)
	rep, err = run("poisson", fmt.Sprintf("open-loop Poisson arrivals at half the churn rate (%.0f/s), 1+1, 1 s dwell", rate),
		load.Shape{Kind: load.Poisson, Rate: rate, Duration: d(10*time.Second, 2*time.Second), Dwell: time.Second}, "1+1", nil)
	if err != nil {
		return err
	}
	res.Runs["poisson"] = rep

	idleN := n(cfg.Idle, 50)
	logf("idle: creating %d sandboxes and keeping them", idleN)
	rep, err = run("idle", fmt.Sprintf("%d sandboxes kept at once on one worker; list; 1+1 in 5; kill all", idleN),
		load.Shape{Kind: load.Idle, N: idleN, Concurrency: 50, Sample: 5, Dwell: time.Second}, "1+1",
		func(context.Context, []e2b.Sandbox) map[string]any { return memory(sys) })
	if err != nil {
		return err
	}
	res.Runs["idle"] = rep
	return nil
}

// runCommandShape runs create → `true` through envd → kill, one at a time.
func runCommandShape(ctx context.Context, sys *system.System, cfg Config, n int) (*report.Report, error) {
	c := client.New(sys.APIURL, sys.APIURL, sys.APIKey, 30*time.Second, 1)
	defer c.CloseIdle()
	rec := load.NewRecorder()
	shape := load.Shape{Kind: load.Sequential, N: n}
	started := time.Now()
	r, err := load.Run(ctx, load.Config{Client: c, Template: "base", SandboxTimeout: 120, Command: "true", Shape: shape,
		RunID: "bench-command", MaxTime: time.Minute}, rec)
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	rep := report.Build(report.Meta{Name: "command", Description: "create + commands.run('true') through envd + kill, one at a time",
		APIURL: sys.APIURL, SandboxURL: sys.APIURL, Template: "base", Command: "true", Shape: shape, StartedAt: started}, rec.Ops(), r)
	return rep, saveReport(cfg.ReportsDir, rep)
}

// memory reads the worker's and apiserver's RSS and the PSS of everything below the worker (holders and
// kernels of the sandboxes).
func memory(sys *system.System) map[string]any {
	out := map[string]any{}
	if rss, err := system.RSS(sys.WorkerPID()); err == nil {
		out["worker_rss_mib"] = mib(rss)
	}
	if rss, err := system.RSS(sys.APIServerPID()); err == nil {
		out["apiserver_rss_mib"] = mib(rss)
	}
	kids := system.Descendants(sys.WorkerPID())
	var pss int64
	for _, pid := range kids {
		if v, err := system.PSS(pid); err == nil {
			pss += v
		}
	}
	out["worker_descendants"] = len(kids)
	out["descendants_pss_mib"] = mib(pss)
	return out
}

type cpuSnap struct {
	api, worker, self system.CPU
	machine           time.Duration
}

func cpuNow(sys *system.System) cpuSnap {
	var s cpuSnap
	s.api, _ = system.CPUOf(sys.APIServerPID())
	s.worker, _ = system.CPUOf(sys.WorkerPID())
	s.self, _ = system.CPUOf(os.Getpid())
	s.machine, _ = system.MachineBusy()
	return s
}

func (s cpuSnap) sub(o cpuSnap) CPUUse {
	a, w, c := s.api.Sub(o.api), s.worker.Sub(o.worker), s.self.Sub(o.self)
	u := CPUUse{APIServer: a.Self + a.Children, Worker: w.Self, Kids: w.Children, Client: c.Self}
	u.Others = max(0, s.machine-o.machine-u.Total())
	return u
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func mib(b int64) float64 { return float64(b*10/(1<<20)) / 10 }

func saveReport(dir string, rep *report.Report) error {
	for _, ext := range []string{"json", "html"} {
		f, err := os.Create(filepath.Join(dir, rep.Name+"."+ext))
		if err != nil {
			return err
		}
		if ext == "json" {
			err = rep.WriteJSON(f)
		} else {
			err = rep.WriteHTML(f)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s report: %w", rep.Name, err)
		}
	}
	return nil
}

// Machine is what the table says about where it ran.
type Machine struct {
	NProc     int
	CPU       string
	MemTotal  string
	Kernel    string
	GoVersion string
	Python    string
	Commit    string
}

func trim(b []byte) string { return strings.TrimSpace(string(b)) }
