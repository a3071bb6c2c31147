package load

import (
	"context"
	"errors"
	"testing"
	"time"

	"fleetbox.dev/loadtest/internal/client"
	"fleetbox.dev/loadtest/internal/e2btest"
	"fleetbox.dev/schema/e2b"
)

func runFake(t *testing.T, srv *e2btest.Server, cfg Config) ([]Op, *Result) {
	t.Helper()
	cfg.Client = client.New(srv.URL, srv.URL, e2btest.Key, 5*time.Second, cfg.Shape.MaxInFlight())
	if cfg.Template == "" {
		cfg.Template = "base"
	}
	rec := NewRecorder()
	res, err := Run(t.Context(), cfg, rec)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rec.Ops(), res
}

func count(ops []Op, p Phase) (ok, failed int) {
	for _, op := range ops {
		if op.Phase == p {
			if op.OK {
				ok++
			} else {
				failed++
			}
		}
	}
	return ok, failed
}

func TestRunShapes(t *testing.T) {
	tests := []struct {
		name      string
		shape     Shape
		code, cmd string
		minLife   int
		maxLife   int
	}{
		{"sequential", Shape{Kind: Sequential, N: 4}, "1+1", "true", 4, 4},
		{"burst", Shape{Kind: Burst, N: 6, Rounds: 2, Pause: 10 * time.Millisecond}, "1+1", "", 12, 12},
		{"concurrent capped by n", Shape{Kind: Concurrent, Concurrency: 3, Duration: 5 * time.Second, N: 9}, "", "", 9, 9},
		{"concurrent by time", Shape{Kind: Concurrent, Concurrency: 2, Duration: 200 * time.Millisecond}, "1+1", "", 2, 100000},
		{"poisson", Shape{Kind: Poisson, Rate: 100, Duration: 300 * time.Millisecond, Dwell: 10 * time.Millisecond}, "1+1", "", 5, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := e2btest.New()
			defer srv.Close()
			srv.CreateDelay = time.Millisecond
			ops, res := runFake(t, srv, Config{Shape: tt.shape, Code: tt.code, Command: tt.cmd, RunID: "t"})
			ok, failed := count(ops, PhaseLifecycle)
			if failed != 0 || ok < tt.minLife || ok > tt.maxLife {
				t.Errorf("lifecycles ok=%d failed=%d, want %d..%d ok", ok, failed, tt.minLife, tt.maxLife)
			}
			if c, _ := count(ops, PhaseCreate); c != ok {
				t.Errorf("%d creates for %d lifecycles", c, ok)
			}
			if k, _ := count(ops, PhaseKill); k != ok {
				t.Errorf("%d kills for %d lifecycles", k, ok)
			}
			if rc, _ := count(ops, PhaseRunCode); (tt.code != "") != (rc == ok) {
				t.Errorf("%d run_codes for %d lifecycles with code %q", rc, ok, tt.code)
			}
			if tti, _ := count(ops, PhaseTTI); (tt.code != "") != (tti == ok) {
				t.Errorf("%d TTIs for %d lifecycles", tti, ok)
			}
			if cm, _ := count(ops, PhaseCommand); (tt.cmd != "") != (cm == ok) {
				t.Errorf("%d commands for %d lifecycles", cm, ok)
			}
			if srv.Live() != 0 || len(res.NotKilled) != 0 {
				t.Errorf("%d sandboxes left alive", srv.Live())
			}
			if res.Wall <= 0 {
				t.Errorf("wall %v", res.Wall)
			}
		})
	}
}

func TestRunBurstIsConcurrent(t *testing.T) {
	srv := e2btest.New()
	defer srv.Close()
	srv.CreateDelay = 50 * time.Millisecond
	runFake(t, srv, Config{Shape: Shape{Kind: Burst, N: 20}})
	if got := srv.MaxConcurrent.Load(); got < 15 {
		t.Errorf("at most %d creates were in flight at once in a burst of 20", got)
	}
}

func TestRunIdle(t *testing.T) {
	srv := e2btest.New()
	defer srv.Close()
	var liveAtHold int
	ops, res := runFake(t, srv, Config{
		Shape: Shape{Kind: Idle, N: 230, Concurrency: 10, Sample: 3}, Code: "1+1", RunID: "idle-test",
		OnHold: func(_ context.Context, held []e2b.Sandbox) map[string]any {
			liveAtHold = srv.Live()
			return map[string]any{"held": len(held)}
		},
	})
	if liveAtHold != 230 {
		t.Errorf("%d sandboxes alive during the hold, want 230", liveAtHold)
	}
	if srv.Live() != 0 {
		t.Errorf("%d left alive after the run", srv.Live())
	}
	h := res.Hold
	if h["created"] != 230 || h["listed_running"] != 230 || h["all_running"] != true || h["held"] != 230 {
		t.Errorf("hold = %v", h)
	}
	if ok, _ := count(ops, PhaseRunCode); ok != 3 {
		t.Errorf("%d sampled run_codes, want 3", ok)
	}
	if ok, _ := count(ops, PhaseList); ok != 1 {
		t.Errorf("%d lists, want 1", ok)
	}
}

func TestRunErrorsAreCountedByKind(t *testing.T) {
	srv := e2btest.New()
	defer srv.Close()
	srv.FailEvery = 3
	srv.CodeError = true
	srv.CommandExit = 2
	ops, res := runFake(t, srv, Config{Shape: Shape{Kind: Sequential, N: 9}, Code: "x", Command: "false"})
	kinds := map[Phase]map[string]int{}
	for _, op := range ops {
		if !op.OK {
			if kinds[op.Phase] == nil {
				kinds[op.Phase] = map[string]int{}
			}
			kinds[op.Phase][op.Kind]++
		}
	}
	if kinds[PhaseCreate]["http 500"] != 3 {
		t.Errorf("create errors %v, want 3 × http 500", kinds[PhaseCreate])
	}
	if kinds[PhaseRunCode][client.KindCodeError] != 6 {
		t.Errorf("run_code errors %v, want 6 × code error", kinds[PhaseRunCode])
	}
	if kinds[PhaseCommand][client.KindExitCode] != 6 {
		t.Errorf("command errors %v, want 6 × exit code", kinds[PhaseCommand])
	}
	if ok, failed := count(ops, PhaseLifecycle); ok != 0 || failed != 9 {
		t.Errorf("lifecycles ok=%d failed=%d, want 0 and 9", ok, failed)
	}
	if ok, _ := count(ops, PhaseKill); ok != 6 || srv.Live() != 0 || len(res.NotKilled) != 0 {
		t.Errorf("%d kills, %d alive: a failed run_code must still kill", ok, srv.Live())
	}
}

func TestRunConnectionErrorsAndCancel(t *testing.T) {
	srv := e2btest.New()
	url := srv.URL
	srv.Close()
	rec := NewRecorder()
	c := client.New(url, url, e2btest.Key, time.Second, 1)
	if _, err := Run(t.Context(), Config{Client: c, Template: "base", Shape: Shape{Kind: Sequential, N: 2}}, rec); err != nil {
		t.Fatal(err)
	}
	for _, op := range rec.Ops() {
		if op.Phase == PhaseCreate && op.Kind != client.KindConnection {
			t.Errorf("create against a closed port: kind %q (%s), want connection", op.Kind, op.Err)
		}
	}

	// A canceled context ends a long concurrent run promptly and still kills what was created.
	srv2 := e2btest.New()
	defer srv2.Close()
	srv2.CreateDelay = 5 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	c2 := client.New(srv2.URL, srv2.URL, e2btest.Key, 5*time.Second, 4)
	t0 := time.Now()
	res, err := Run(ctx, Config{Client: c2, Template: "base", RunID: "cancel", Shape: Shape{Kind: Concurrent, Concurrency: 4, Duration: time.Hour}}, NewRecorder())
	if !errors.Is(err, context.DeadlineExceeded) || res == nil {
		t.Fatalf("Run after the caller's deadline = %v, %v; want the result and the context's error", res, err)
	}
	if time.Since(t0) > 5*time.Second {
		t.Errorf("cancel took %v", time.Since(t0))
	}
	if srv2.Live() != 0 {
		t.Errorf("%d sandboxes left alive after cancel", srv2.Live())
	}
}

func TestRunTimeBudget(t *testing.T) {
	srv := e2btest.New()
	defer srv.Close()
	c := client.New(srv.URL, srv.URL, e2btest.Key, 5*time.Second, 2)
	_, err := Run(t.Context(), Config{Client: c, Template: "base", MaxTime: 200 * time.Millisecond, RunID: "budget",
		Shape: Shape{Kind: Concurrent, Concurrency: 2, Duration: time.Hour}}, NewRecorder())
	if err == nil {
		t.Error("a run past its time budget did not say so")
	}
	if srv.Live() != 0 {
		t.Errorf("%d sandboxes left alive", srv.Live())
	}
}
