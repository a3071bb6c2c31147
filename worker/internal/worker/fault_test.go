package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/worker"
)

// faultRuntime wraps the real runtime to script failures of Create: an error, or a wait on a gate.
type faultRuntime struct {
	runtime.Runtime
	mu      sync.Mutex
	err     error
	gate    chan struct{}
	entered chan struct{} // receives once per Create that waits on the gate
}

func (f *faultRuntime) Create(ctx context.Context, spec runtime.Spec) (runtime.Sandbox, error) {
	f.mu.Lock()
	err, gate := f.err, f.gate
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if gate != nil {
		f.entered <- struct{}{}
		<-gate
	}
	return f.Runtime.Create(ctx, spec)
}

func (f *faultRuntime) set(err error, gate chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.gate = err, gate
}

func withFaults(f *faultRuntime) workerOpt {
	return func(c *worker.Config) {
		f.Runtime = c.Runtime
		f.entered = make(chan struct{}, 16)
		c.Runtime = f
	}
}

// A failed start marks the record failed with the cause and gives the slot back.
func TestStartFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	f := &faultRuntime{}
	h.startWorker(t, withCapacity(1), withFaults(f))
	f.set(errors.New("disk on fire"), nil)
	id := h.create(t, time.Now().Add(time.Hour))
	rec := h.waitState(t, id, schema.StateFailed)
	if !strings.Contains(rec.Reason, "disk on fire") || rec.EndedAt.IsZero() {
		t.Fatalf("failed record: %+v", rec)
	}
	f.set(nil, nil)
	h.createRunning(t) // the only slot is free again
}

// A create the apiserver gave up on while the worker was starting it stays ended: the worker cleans up
// and does not resurrect or fail it.
func TestAbandonedWhileStarting(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	f := &faultRuntime{}
	w := h.startWorker(t, withCapacity(1), withFaults(f))
	gate := make(chan struct{})
	f.set(nil, gate)
	id := h.create(t, time.Now().Add(time.Hour))
	<-f.entered
	h.waitState(t, id, schema.StateStarting)
	// What the apiserver's create timeout does when the owner cannot be reached yet.
	if _, _, err := h.bus.UpdateRecord(t.Context(), id, func(r schema.Record) (schema.Record, error) {
		return r.Transition(schema.StateLost, schema.ReasonCreateTimeout)
	}); err != nil {
		t.Fatal(err)
	}
	f.set(nil, nil)
	close(gate)
	h.createRunning(t) // the slot came back
	if rec, _, _ := h.bus.GetRecord(t.Context(), id); rec.State != schema.StateLost || rec.Reason != schema.ReasonCreateTimeout {
		t.Fatalf("abandoned record became %s (%s)", rec.State, rec.Reason)
	}
	for _, d := range w.sandboxDirs(t) {
		if d == id {
			t.Fatalf("abandoned sandbox's directory left")
		}
	}
}

// A worker told to stop while a start is in progress finishes the start, then kills it as drained.
func TestDrainWhileStarting(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	f := &faultRuntime{}
	w := h.startWorker(t, withFaults(f))
	gate := make(chan struct{})
	f.set(nil, gate)
	id := h.create(t, time.Now().Add(time.Hour))
	<-f.entered
	stopped := make(chan struct{})
	go func() {
		w.stop(t)
		close(stopped)
	}()
	time.Sleep(50 * time.Millisecond) // let the drain begin; either order must end the same way
	close(gate)
	<-stopped
	rec, _, err := h.bus.GetRecord(t.Context(), id)
	if err != nil || rec.State != schema.StateKilled || rec.Reason != schema.ReasonWorkerDrained {
		t.Fatalf("record %+v, %v", rec, err)
	}
	if dirs := w.sandboxDirs(t); len(dirs) != 0 {
		t.Fatalf("dirs left: %v", dirs)
	}
}
