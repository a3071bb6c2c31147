package bus_test

import (
	"errors"
	"testing"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
)

func TestSnapshots(t *testing.T) {
	t.Parallel()
	srv := bustest.RunJetStream(t)
	b, err := bus.Open(t.Context(), bustest.Connect(t, srv), bus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	a := schema.Snapshot{ID: schema.NewSandboxID(), Names: []string{"first"}, SandboxID: schema.NewSandboxID(), Worker: "w1", CreatedAt: now}
	c := schema.Snapshot{ID: schema.NewSandboxID(), Names: []string{"second", "team/second:v1"}, Worker: "w2", CreatedAt: now.Add(time.Second)}
	for _, s := range []schema.Snapshot{c, a} {
		if err := b.PutSnapshot(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	for ref, want := range map[string]string{a.ID: a.ID, "first": a.ID, "team/second:v1": c.ID, c.ID: c.ID} {
		got, err := b.GetSnapshot(t.Context(), ref)
		if err != nil || got.ID != want {
			t.Errorf("GetSnapshot(%q) = %q, %v; want %q", ref, got.ID, err, want)
		}
	}
	if _, err := b.GetSnapshot(t.Context(), "nope"); !errors.Is(err, bus.ErrSnapshotNotFound) {
		t.Errorf("unknown snapshot: %v", err)
	}
	all, err := b.ListSnapshots(t.Context())
	if err != nil || len(all) != 2 || all[0].ID != a.ID || all[1].ID != c.ID {
		t.Fatalf("ListSnapshots = %+v, %v; want oldest first", all, err)
	}
	if err := b.DeleteSnapshot(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteSnapshot(t.Context(), a.ID); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := b.GetSnapshot(t.Context(), "first"); !errors.Is(err, bus.ErrSnapshotNotFound) {
		t.Errorf("deleted snapshot still found: %v", err)
	}
}
