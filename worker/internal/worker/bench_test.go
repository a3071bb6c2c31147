package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/worker"
)

// TestManyCreatesAtOnce is the load test's shape on one worker: 50 creates in flight at once.
func TestManyCreatesAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.startWorker(t)
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = h.create(t, time.Now().Add(time.Hour))
		}()
	}
	wg.Wait()
	for _, id := range ids {
		h.waitState(t, id, schema.StateRunning)
	}
	if w.Running() != n {
		t.Fatalf("running %d, want %d", w.Running(), n)
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, _, _ := summary(h.run(t, ids[i], "", fmt.Sprintf("%d + 1", i))); res != fmt.Sprint(i+1) {
				t.Errorf("sandbox %d: result %q", i, res)
			}
			kill(t, h, ids[i])
		}()
	}
	wg.Wait()
	if dirs := w.sandboxDirs(t); len(dirs) != 0 {
		t.Fatalf("dirs left: %d", len(dirs))
	}
}

// waitRunning watches the record until it is running (the apiserver's wait, without polling).
func (h *harness) waitRunning(tb testing.TB, id string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watch, err := h.bus.Sandboxes.Watch(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	defer watch.Stop()
	for e := range watch.Updates() {
		if e == nil {
			continue
		}
		var r schema.Record
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			tb.Fatal(err)
		}
		switch r.State {
		case schema.StateRunning:
			return
		case schema.StateFailed, schema.StateKilled:
			tb.Fatalf("sandbox %s %s: %s", id, r.State, r.Reason)
		}
	}
	tb.Fatalf("sandbox %s not running: %v", id, ctx.Err())
}

// BenchmarkCreateToRunning measures pending record + create command → record running, through the bus.
func BenchmarkCreateToRunning(b *testing.B) {
	for _, ks := range []worker.KernelStart{worker.KernelLazy, worker.KernelBackground, worker.KernelReady} {
		b.Run(fmt.Sprintf("kernel=%s", ks), func(b *testing.B) {
			h := newHarness(b)
			h.startWorker(b, func(c *worker.Config) { c.KernelStart = ks })
			for b.Loop() {
				id := h.create(b, time.Now().Add(time.Hour))
				h.waitRunning(b, id)
				b.StopTimer()
				kill(b, h, id)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkCreateAndFirstRunCode measures create → running → first run_code `1+1` answered, which
// decides when the default kernel should start.
func BenchmarkCreateAndFirstRunCode(b *testing.B) {
	for _, ks := range []worker.KernelStart{worker.KernelLazy, worker.KernelBackground, worker.KernelReady} {
		b.Run(fmt.Sprintf("kernel=%s", ks), func(b *testing.B) {
			h := newHarness(b)
			h.startWorker(b, func(c *worker.Config) { c.KernelStart = ks })
			for b.Loop() {
				id := h.create(b, time.Now().Add(time.Hour))
				h.waitRunning(b, id)
				if res, _, _ := summary(h.run(b, id, "", "1+1")); res != "2" {
					b.Fatalf("result %q", res)
				}
				b.StopTimer()
				kill(b, h, id)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkExecuteWarm measures one run_code `1+1` on a warm context, through the bus.
func BenchmarkExecuteWarm(b *testing.B) {
	h := newHarness(b)
	h.startWorker(b)
	id := h.createRunning(b)
	h.run(b, id, "", "0")
	for b.Loop() {
		if res, _, _ := summary(h.run(b, id, "", "1+1")); res != "2" {
			b.Fatalf("result %q", res)
		}
	}
}

// BenchmarkKill measures the kill operation through the bus: processes killed, files removed, record
// ended, reply received.
func BenchmarkKill(b *testing.B) {
	h := newHarness(b)
	h.startWorker(b)
	for b.Loop() {
		b.StopTimer()
		id := h.createRunning(b)
		h.run(b, id, "", "0") // the kernel is up, as in a sandbox that was used
		b.StartTimer()
		kill(b, h, id)
	}
}

// BenchmarkPauseResume measures a pause and a resume through the bus of a sandbox whose kernel and one
// background command run: every process stopped and continued, the record written twice.
func BenchmarkPauseResume(b *testing.B) {
	h := newHarness(b)
	h.startWorker(b)
	id := h.createRunning(b)
	h.run(b, id, "", "0")
	mustStart(b, h.bus.NC, id, sh("sleep 1000"))
	for b.Loop() {
		if _, err := pauseOp(b, h, id); err != nil {
			b.Fatal(err)
		}
		if _, err := resumeOp(b, h, id, time.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshot measures a snapshot of a sandbox holding 1 MiB in 64 files (paused, copied, resumed,
// recorded), through the bus.
func BenchmarkSnapshot(b *testing.B) {
	h := newHarness(b)
	h.startWorker(b)
	id := h.createRunning(b)
	runSh(b, h.bus.NC, id, `for i in $(seq 64); do head -c 16384 /dev/urandom > "$HOME/f$i"; done`)
	for b.Loop() {
		if _, err := op[schema.Snapshot](b, h.bus.NC, id, schema.OpSnapshot, schema.SnapshotRequest{ID: schema.NewSandboxID()}); err != nil {
			b.Fatal(err)
		}
	}
}
