// Package report turns a run's recorded operations into the load tester's outputs: a JSON report (the
// source of truth, from which the HTML can be rebuilt), a self-contained HTML page with inline SVG charts,
// a text summary and a live progress line.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"fleetbox.dev/loadtest/internal/load"
	"fleetbox.dev/loadtest/internal/stats"
)

// Version of the JSON layout.
const Version = 1

// WindowWidth is the width of the per-window breakdown.
const WindowWidth = 10 * time.Second

// maxSamples bounds the raw samples kept per phase in the JSON (enough for the timeline plot).
const maxSamples = 50000

// Report is one run, as written by -json.
type Report struct {
	Tool        string         `json:"tool"`
	Version     int            `json:"version"`
	Name        string         `json:"name"` // profile or shape
	Description string         `json:"description,omitempty"`
	APIURL      string         `json:"api_url"`
	SandboxURL  string         `json:"sandbox_url"`
	Template    string         `json:"template"`
	Code        string         `json:"code"`
	Command     string         `json:"command"`
	Shape       load.Shape     `json:"shape"`
	ShapeText   string         `json:"shape_text"`
	StartedAt   time.Time      `json:"started_at"`
	WallS       float64        `json:"wall_s"`
	Lifecycles  Lifecycles     `json:"lifecycles"`
	Phases      []Phase        `json:"phases"`
	Windows     []PhaseWindows `json:"windows"`
	Hold        map[string]any `json:"hold,omitempty"`
	NotKilled   []string       `json:"not_killed,omitempty"`
	Orphans     int            `json:"orphans_killed,omitempty"` // sandboxes of cut creates, found by listing and killed
}

// Lifecycles counts full create → … → kill runs.
type Lifecycles struct {
	Started     int     `json:"started"`
	OK          int     `json:"ok"`
	Failed      int     `json:"failed"`
	SuccessRate float64 `json:"success_rate"`
	PerSecond   float64 `json:"per_second"` // successful lifecycles per second of wall time
}

// Phase is one step's statistics.
type Phase struct {
	Name         string         `json:"name"`
	Count        int            `json:"count"`
	OK           int            `json:"ok"`
	Failed       int            `json:"failed"`
	SuccessRate  float64        `json:"success_rate"`
	PerSecond    float64        `json:"per_second"` // successful operations per second of wall time
	Latency      stats.Summary  `json:"latency"`    // of the successful operations
	Errors       map[string]int `json:"errors,omitempty"`
	ErrorSamples []string       `json:"error_samples,omitempty"`
	Histogram    []stats.Bucket `json:"histogram,omitempty"`
	// Samples are [start_ms, duration_ms, ok(1|0)] in start order, at most 50,000.
	Samples [][3]float64 `json:"samples,omitempty"`
}

// PhaseWindows is one phase's per-window breakdown.
type PhaseWindows struct {
	Phase   string         `json:"phase"`
	Windows []stats.Window `json:"windows"`
}

// Meta is what the report says about the run besides its measurements.
type Meta struct {
	Name, Description            string
	APIURL, SandboxURL, Template string
	Code, Command                string
	Shape                        load.Shape
	StartedAt                    time.Time
}

// Build computes the report of a finished run.
func Build(m Meta, ops []load.Op, res *load.Result) *Report {
	r := &Report{
		Tool: "fleetbox-loadtest", Version: Version,
		Name: m.Name, Description: m.Description,
		APIURL: m.APIURL, SandboxURL: m.SandboxURL, Template: m.Template,
		Code: m.Code, Command: m.Command,
		Shape: m.Shape, ShapeText: m.Shape.String(), StartedAt: m.StartedAt.UTC(),
	}
	wall := time.Duration(0)
	if res != nil {
		wall = res.Wall
		r.Hold = res.Hold
		r.NotKilled = res.NotKilled
		r.Orphans = res.Orphans
	}
	for _, op := range ops {
		wall = max(wall, op.End())
	}
	r.WallS = round(wall.Seconds(), 3)
	by := map[load.Phase][]load.Op{}
	for _, op := range ops {
		by[op.Phase] = append(by[op.Phase], op)
	}
	for _, p := range load.Phases {
		pops := by[p]
		if len(pops) == 0 {
			continue
		}
		r.Phases = append(r.Phases, buildPhase(string(p), pops, wall))
		samples := make([]stats.Sample, len(pops))
		for i, op := range pops {
			samples[i] = op.Sample
		}
		r.Windows = append(r.Windows, PhaseWindows{Phase: string(p), Windows: stats.Windows(samples, WindowWidth, wall)})
	}
	if lc := r.Phase(string(load.PhaseLifecycle)); lc != nil {
		r.Lifecycles = Lifecycles{Started: lc.Count, OK: lc.OK, Failed: lc.Failed, SuccessRate: lc.SuccessRate, PerSecond: lc.PerSecond}
	}
	return r
}

func buildPhase(name string, ops []load.Op, wall time.Duration) Phase {
	p := Phase{Name: name, Count: len(ops)}
	var lat []time.Duration
	sorted := slices.Clone(ops)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Start < sorted[j].Start })
	seen := map[string]bool{}
	for _, op := range sorted {
		if op.OK {
			p.OK++
			lat = append(lat, op.Dur)
		} else {
			p.Failed++
			if p.Errors == nil {
				p.Errors = map[string]int{}
			}
			p.Errors[op.Kind]++
			if !seen[op.Err] && len(p.ErrorSamples) < 5 {
				seen[op.Err] = true
				p.ErrorSamples = append(p.ErrorSamples, op.Err)
			}
		}
		if len(p.Samples) < maxSamples {
			ok := 0.0
			if op.OK {
				ok = 1
			}
			p.Samples = append(p.Samples, [3]float64{stats.Ms(op.Start), stats.Ms(op.Dur), ok})
		}
	}
	p.SuccessRate = round(float64(p.OK)/float64(p.Count), 4)
	if wall > 0 {
		p.PerSecond = round(float64(p.OK)/wall.Seconds(), 2)
	}
	p.Latency = stats.Summarize(lat)
	p.Histogram = stats.Histogram(lat)
	return p
}

// Phase returns the named phase, or nil.
func (r *Report) Phase(name string) *Phase {
	for i := range r.Phases {
		if r.Phases[i].Name == name {
			return &r.Phases[i]
		}
	}
	return nil
}

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(r)
}

// ReadJSON reads a report written by WriteJSON.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("decode report: %w", err)
	}
	if r.Tool != "fleetbox-loadtest" || r.Version != Version {
		return nil, fmt.Errorf("not a fleetbox-loadtest report of version %d (tool %q, version %d)", Version, r.Tool, r.Version)
	}
	return &r, nil
}

// WriteText writes a human summary: one line per phase and the error kinds.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%s: %s against %s (template %s", r.Name, r.ShapeText, r.APIURL, r.Template)
	if r.Code != "" {
		fmt.Fprintf(w, ", code %q", r.Code)
	}
	if r.Command != "" {
		fmt.Fprintf(w, ", command %q", r.Command)
	}
	fmt.Fprintf(w, "), wall %.2fs\n", r.WallS)
	fmt.Fprintf(w, "  %-10s %6s %7s %8s %8s %8s %8s %8s %8s %8s\n", "phase", "n", "ok%", "min", "p50", "p90", "p95", "p99", "max", "ok/s")
	for _, p := range r.Phases {
		l := p.Latency
		fmt.Fprintf(w, "  %-10s %6d %6.1f%% %8s %8s %8s %8s %8s %8s %8.1f\n", p.Name, p.Count, 100*p.SuccessRate,
			msText(l.MinMs), msText(l.P50Ms), msText(l.P90Ms), msText(l.P95Ms), msText(l.P99Ms), msText(l.MaxMs), p.PerSecond)
	}
	for _, p := range r.Phases {
		for _, k := range slices.Sorted(maps.Keys(p.Errors)) {
			fmt.Fprintf(w, "  errors %s: %s × %d\n", p.Name, k, p.Errors[k])
		}
		for _, s := range p.ErrorSamples {
			fmt.Fprintf(w, "    e.g. %s\n", s)
		}
	}
	if len(r.Hold) > 0 {
		for _, k := range slices.Sorted(maps.Keys(r.Hold)) {
			fmt.Fprintf(w, "  hold %s = %s\n", k, holdValue(r.Hold[k]))
		}
	}
	if len(r.NotKilled) > 0 {
		fmt.Fprintf(w, "  %d sandboxes could not be killed (their timeout will end them)\n", len(r.NotKilled))
	}
}

func msText(ms float64) string {
	switch {
	case ms == 0:
		return "-"
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.2fs", ms/1000)
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
