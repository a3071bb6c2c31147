package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/loadtest/internal/client"
	"fleetbox.dev/loadtest/internal/load"
	"fleetbox.dev/loadtest/internal/stats"
)

func op(p load.Phase, startMs, durMs float64, err error) load.Op {
	o := load.Op{Phase: p, Sample: stats.Sample{
		Start: time.Duration(startMs * 1e6), Dur: time.Duration(durMs * 1e6), OK: err == nil}}
	if err != nil {
		o.Kind = client.KindOf(err)
		o.Err = err.Error()
	}
	return o
}

func sampleReport() *Report {
	var ops []load.Op
	for i := 0; i < 40; i++ {
		s := float64(i) * 500
		ops = append(ops,
			op(load.PhaseCreate, s, 10+float64(i%7), nil),
			op(load.PhaseRunCode, s+20, 3, nil),
			op(load.PhaseTTI, s, 23+float64(i%7), nil),
			op(load.PhaseKill, s+30, 5, nil),
			op(load.PhaseLifecycle, s, 40, nil))
	}
	ops = append(ops,
		op(load.PhaseCreate, 100, 30000, &client.Error{Kind: client.KindTimeout, Op: "create", Msg: "deadline <&> exceeded"}),
		op(load.PhaseLifecycle, 100, 30000, &client.Error{Kind: client.KindTimeout, Op: "create", Msg: "deadline <&> exceeded"}),
		op(load.PhaseCreate, 200, 2, &client.Error{Kind: "http 503", Op: "create", Status: 503, Msg: "busy"}),
		op(load.PhaseLifecycle, 200, 2, &client.Error{Kind: "http 503", Op: "create", Status: 503, Msg: "busy"}))
	return Build(Meta{
		Name: "test <profile> & co", Description: `quotes " and 'apostrophes'`, APIURL: "http://127.0.0.1:1", SandboxURL: "http://127.0.0.1:1",
		Template: "base", Code: "print('<b>')", Shape: load.Shape{Kind: load.Sequential, N: 42}, StartedAt: time.Unix(1e9, 0),
	}, ops, &load.Result{Wall: 30 * time.Second, Hold: map[string]any{"created": 3}})
}

func TestBuild(t *testing.T) {
	r := sampleReport()
	cr := r.Phase("create")
	if cr == nil || cr.Count != 42 || cr.OK != 40 || cr.Failed != 2 {
		t.Fatalf("create phase = %+v", cr)
	}
	if cr.Errors["timeout"] != 1 || cr.Errors["http 503"] != 1 {
		t.Errorf("errors by kind = %v", cr.Errors)
	}
	if cr.Latency.Count != 40 || cr.Latency.MinMs != 10 || cr.Latency.MaxMs != 16 {
		t.Errorf("latency of successful creates = %+v (failures must not count)", cr.Latency)
	}
	if r.Lifecycles.Started != 42 || r.Lifecycles.OK != 40 || r.Lifecycles.PerSecond != 1.33 {
		t.Errorf("lifecycles = %+v", r.Lifecycles)
	}
	if r.WallS != 30.1 { // the timed-out create ends at 30.1 s, past Result.Wall
		t.Errorf("wall = %v", r.WallS)
	}
	if len(r.Windows) == 0 || len(r.Windows[0].Windows) != 4 {
		t.Errorf("windows = %+v", r.Windows)
	}
	var names []string
	for _, p := range r.Phases {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "create,tti,run_code,kill,lifecycle" {
		t.Errorf("phase order %s", got)
	}
}

// The JSON report's shape is an interface (other tools read it): check the keys, not just a round trip.
func TestReportJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tool", "version", "name", "api_url", "sandbox_url", "template", "code", "command", "shape",
		"shape_text", "started_at", "wall_s", "lifecycles", "phases", "windows", "hold"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report has no %q", k)
		}
	}
	if m["tool"] != "fleetbox-loadtest" || m["version"] != float64(Version) {
		t.Errorf("tool/version = %v/%v", m["tool"], m["version"])
	}
	phase := m["phases"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "count", "ok", "failed", "success_rate", "per_second", "latency", "errors", "histogram", "samples"} {
		if _, ok := phase[k]; !ok {
			t.Errorf("phase has no %q", k)
		}
	}
	lat := phase["latency"].(map[string]any)
	for _, k := range []string{"count", "min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms"} {
		if _, ok := lat[k].(float64); !ok {
			t.Errorf("latency has no number %q", k)
		}
	}
	win := m["windows"].([]any)[0].(map[string]any)
	w0 := win["windows"].([]any)[0].(map[string]any)
	for _, k := range []string{"start_s", "end_s", "ok", "failed", "per_second", "p50_ms", "p99_ms", "max_ms"} {
		if _, ok := w0[k]; !ok {
			t.Errorf("window has no %q", k)
		}
	}
	if s := phase["samples"].([]any)[0].([]any); len(s) != 3 {
		t.Errorf("a sample is %v, want [start_ms, dur_ms, ok]", s)
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if back.Phase("create").Latency != sampleReport().Phase("create").Latency {
		t.Error("JSON round trip changed the create latency")
	}
	if _, err := ReadJSON(strings.NewReader(`{"tool":"other","version":1}`)); err == nil {
		t.Error("ReadJSON accepted another tool's file")
	}
}

// The HTML must be self-contained and well-formed: parse it as strict XML, balance every element, and
// find the charts.
func TestHTMLWellFormed(t *testing.T) {
	for _, r := range []*Report{sampleReport(), Build(Meta{Name: "empty"}, nil, nil)} {
		var buf bytes.Buffer
		if err := r.WriteHTML(&buf); err != nil {
			t.Fatal(err)
		}
		doc := buf.String()
		d := xml.NewDecoder(strings.NewReader(doc))
		d.Strict = true
		var stack []string
		counts := map[string]int{}
		for {
			tok, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: not well-formed: %v", r.Name, err)
			}
			switch x := tok.(type) {
			case xml.StartElement:
				stack = append(stack, x.Name.Local)
				counts[x.Name.Local]++
				for _, a := range x.Attr {
					if (a.Name.Local == "src" || a.Name.Local == "href") && a.Value != "" {
						t.Errorf("%s: external resource %s=%q", r.Name, a.Name.Local, a.Value)
					}
				}
			case xml.EndElement:
				if len(stack) == 0 || stack[len(stack)-1] != x.Name.Local {
					t.Fatalf("%s: </%s> closes %v", r.Name, x.Name.Local, stack)
				}
				stack = stack[:len(stack)-1]
			}
		}
		if len(stack) != 0 {
			t.Errorf("%s: unclosed %v", r.Name, stack)
		}
		if counts["html"] != 1 || counts["body"] != 1 || counts["script"] != 0 || counts["link"] != 0 {
			t.Errorf("%s: element counts %v", r.Name, counts)
		}
		if r.Name != "empty" {
			// timeline + throughput + one histogram per phase
			if counts["svg"] != 2+len(r.Phases) || counts["circle"] == 0 || counts["rect"] == 0 {
				t.Errorf("%s: charts missing: %v", r.Name, counts)
			}
			if !strings.Contains(doc, "test &lt;profile&gt; &amp; co") || strings.Contains(doc, "<profile>") {
				t.Error("the name was not escaped")
			}
		}
	}
}

func TestWriteText(t *testing.T) {
	var buf bytes.Buffer
	sampleReport().WriteText(&buf)
	out := buf.String()
	for _, want := range []string{"create", "p99", "errors create: http 503 × 1", "errors create: timeout × 1", "hold created = 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("text summary lacks %q:\n%s", want, out)
		}
	}
}

func TestProgressLine(t *testing.T) {
	got := ProgressLine(load.Progress{Elapsed: 1500 * time.Millisecond, InFlight: 3, Created: 10, CreateErrors: 1,
		RecentCreateP50: 12 * time.Millisecond, RecentCreateP99: 40 * time.Millisecond, RecentCreateRate: 6.5})
	for _, want := range []string{"1.5s", "in flight    3", "created     10 (1 failed)", "6.5 creates/s", "p50 12.0ms", "p99 40.0ms"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress line %q lacks %q", got, want)
		}
	}
}
