package bus_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
)

func listIDs(t *testing.T, b *bus.Bus) []string {
	t.Helper()
	recs, err := b.ListRecords(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

// A list through the cache sees every write made before it, on this connection or another one.
func TestCacheReadsItsWrites(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	writer := bustest.Open(t, ns, bus.Config{})
	before := schema.Record{ID: schema.NewSandboxID(), State: schema.StatePending, CreatedAt: time.Now().UTC()}
	if _, err := writer.CreateRecord(t.Context(), before); err != nil {
		t.Fatal(err)
	}
	reader := bustest.Open(t, ns, bus.Config{})
	reader.CacheRecords(t.Context())

	want := []string{before.ID}
	for i := range 100 {
		b := writer
		if i%2 == 1 {
			b = reader
		}
		r := schema.Record{ID: schema.NewSandboxID(), State: schema.StatePending, CreatedAt: time.Now().UTC()}
		rev, err := b.CreateRecord(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r.ID)
		if i%10 == 0 { // and a removal now and then
			if err := b.DeleteRecord(t.Context(), r.ID, rev); err != nil {
				t.Fatal(err)
			}
			want = want[:len(want)-1]
		}
		slices.Sort(want)
		if got := listIDs(t, reader); !slices.Equal(got, want) {
			t.Fatalf("after write %d: cache lists %d records, want %d", i, len(got), len(want))
		}
	}
	// State changes show too.
	id := want[0]
	if _, _, err := writer.UpdateRecord(t.Context(), id, func(r schema.Record) (schema.Record, error) {
		return r.Transition(schema.StateStarting, "")
	}); err != nil {
		t.Fatal(err)
	}
	recs, err := reader.ListRecords(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ID == id && r.State != schema.StateStarting {
			t.Fatalf("cached %s is %s after the update", id, r.State)
		}
	}
}

// When the cache stops, lists read the bucket.
func TestCacheStopped(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	b.CacheRecords(ctx)
	r := schema.Record{ID: schema.NewSandboxID(), State: schema.StatePending, CreatedAt: time.Now().UTC()}
	if _, err := b.CreateRecord(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, b); !slices.Equal(got, []string{r.ID}) {
		t.Fatalf("list %v", got)
	}
	cancel() // the cache stops: lists still answer, from the bucket
	r2 := schema.Record{ID: schema.NewSandboxID(), State: schema.StatePending, CreatedAt: time.Now().UTC()}
	if _, err := b.CreateRecord(t.Context(), r2); err != nil {
		t.Fatal(err)
	}
	want := []string{r.ID, r2.ID}
	slices.Sort(want)
	bustest.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := listIDs(t, b); !slices.Equal(got, want) {
			return fmt.Errorf("list %v, want %v", got, want)
		}
		return nil
	})
}

// BenchmarkListRecords lists 1,000 records: read from the bucket, and from the cache.
func BenchmarkListRecords(b *testing.B) {
	ns := bustest.RunJetStream(b)
	bb := bustest.Open(b, ns, bus.Config{})
	for range 1000 {
		r := schema.Record{ID: schema.NewSandboxID(), State: schema.StateRunning, CreatedAt: time.Now().UTC()}
		if _, err := bb.CreateRecord(b.Context(), r); err != nil {
			b.Fatal(err)
		}
	}
	cached := bustest.Open(b, ns, bus.Config{})
	cached.CacheRecords(b.Context())
	for name, c := range map[string]*bus.Bus{"bucket": bb, "cache": cached} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				recs, err := c.ListRecords(b.Context())
				if err != nil || len(recs) != 1000 {
					b.Fatalf("%d records, %v", len(recs), err)
				}
			}
		})
	}
}
