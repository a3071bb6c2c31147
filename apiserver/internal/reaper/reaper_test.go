package reaper_test

import (
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"fleetbox.dev/apiserver/internal/reaper"
	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
)

func TestSweep(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{WorkerTTL: 2 * time.Second})
	ctx := t.Context()
	now := time.Now()
	clock := func() time.Time { return now }
	r := reaper.New(b, reaper.Config{Holder: "test", Now: clock, Log: slog.New(slog.DiscardHandler)})

	heartbeat := func(id string) {
		v, _ := json.Marshal(schema.WorkerInfo{ID: id})
		if _, err := b.Workers.Put(ctx, id, v); err != nil {
			t.Fatal(err)
		}
	}
	put := func(rec schema.Record) {
		if _, err := b.CreateRecord(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	heartbeat("alive")
	put(schema.Record{ID: "onalive", State: schema.StateRunning, Worker: "alive", CreatedAt: now})
	put(schema.Record{ID: "ondead", State: schema.StateRunning, Worker: "dead", CreatedAt: now})
	put(schema.Record{ID: "starting", State: schema.StateStarting, Worker: "dead", CreatedAt: now})
	put(schema.Record{ID: "freshpending", State: schema.StatePending, CreatedAt: now})
	put(schema.Record{ID: "stalepending", State: schema.StatePending, CreatedAt: now.Add(-time.Hour)})
	put(schema.Record{ID: "oldend", State: schema.StateKilled, CreatedAt: now.Add(-3 * time.Hour), EndedAt: now.Add(-2 * time.Hour)})
	put(schema.Record{ID: "newend", State: schema.StateKilled, CreatedAt: now, EndedAt: now})

	state := func(id string) schema.State {
		rec, _, err := b.GetRecord(ctx, id)
		if err != nil {
			return "gone"
		}
		return rec.State
	}
	// First sweep: the dead worker is only noticed; pending and old records are handled at once.
	if err := r.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]schema.State{
		"onalive": schema.StateRunning, "ondead": schema.StateRunning, "starting": schema.StateStarting,
		"freshpending": schema.StatePending, "stalepending": schema.StateFailed, "oldend": "gone", "newend": schema.StateKilled,
	}
	for id, w := range want {
		if got := state(id); got != w {
			t.Errorf("after first sweep %s is %s, want %s", id, got, w)
		}
	}
	// Half a TTL later the dead worker's sandboxes are lost; the live worker's are untouched.
	now = now.Add(time.Second)
	if err := r.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	want["ondead"], want["starting"] = schema.StateLost, schema.StateLost
	for id, w := range want {
		if got := state(id); got != w {
			t.Errorf("after second sweep %s is %s, want %s", id, got, w)
		}
	}
	rec, _, _ := b.GetRecord(ctx, "ondead")
	if rec.Reason != schema.ReasonWorkerLost || rec.EndedAt.IsZero() {
		t.Errorf("lost record: reason %q endedAt %v", rec.Reason, rec.EndedAt)
	}
}

func TestLeaseIsExclusive(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{WorkerTTL: 2 * time.Second})
	ctx := t.Context()
	for _, holder := range []string{"a", "b"} {
		go reaper.New(b, reaper.Config{Holder: holder, SweepInterval: 100 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}).Run(ctx)
	}
	// The lease has one holder and keeps it while it renews (well past the bucket TTL).
	var first string
	bustest.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		e, err := b.Leases.Get(ctx, reaper.LeaseKey)
		if err != nil {
			return err
		}
		first = string(e.Value())
		return nil
	})
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		e, err := b.Leases.Get(ctx, reaper.LeaseKey)
		if err != nil {
			t.Fatalf("lease vanished while held: %v", err)
		}
		if string(e.Value()) != first {
			t.Fatalf("lease moved from %s to %s while renewed", first, e.Value())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
