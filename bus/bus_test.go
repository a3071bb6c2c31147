package bus_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
)

func TestRecordCompareAndSet(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{})
	ctx := t.Context()

	r := schema.Record{ID: schema.NewSandboxID(), State: schema.StatePending, TemplateID: "base"}
	if _, err := b.CreateRecord(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateRecord(ctx, r); err == nil {
		t.Fatal("second create of the same id must fail")
	}
	cur, rev, err := b.GetRecord(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Two claimers race from the same revision: exactly one wins.
	var wins, stale int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next, _ := cur.Transition(schema.StateStarting, "")
			next.Worker = []string{"w1", "w2"}[i]
			_, err := b.CompareAndSet(ctx, cur, rev, next)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, bus.ErrStale):
				stale++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || stale != 1 {
		t.Fatalf("wins=%d stale=%d, want 1 and 1", wins, stale)
	}
	// The state machine is enforced at the write.
	cur, rev, _ = b.GetRecord(ctx, r.ID)
	back := cur
	back.State = schema.StatePending
	var te *schema.TransitionError
	if _, err := b.CompareAndSet(ctx, cur, rev, back); !errors.As(err, &te) {
		t.Fatalf("starting -> pending: got %v, want TransitionError", err)
	}
	if _, _, err := b.GetRecord(ctx, "missing"); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("missing record: %v", err)
	}
	all, err := b.ListRecords(ctx)
	if err != nil || len(all) != 1 || all[0].ID != r.ID {
		t.Fatalf("ListRecords = %v, %v", all, err)
	}
}

func TestUpdateRecordRetries(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{})
	ctx := t.Context()
	r := schema.Record{ID: schema.NewSandboxID(), State: schema.StateRunning, Metadata: map[string]string{}}
	if _, err := b.CreateRecord(ctx, r); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := b.UpdateRecord(ctx, r.ID, func(cur schema.Record) (schema.Record, error) {
				m := map[string]string{}
				for k, v := range cur.Metadata {
					m[k] = v
				}
				m[string(rune('a'+i))] = "x"
				cur.Metadata = m
				return cur, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _, _ := b.GetRecord(ctx, r.ID)
	if len(got.Metadata) != 10 {
		t.Fatalf("lost updates: %v", got.Metadata)
	}
}

type echoReq struct{ S string }
type echoResp struct{ S string }

func TestMuxRequest(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	nc := bustest.Connect(t, ns)
	mux := bus.NewMux(5*time.Second, nil)
	bus.Handle(mux, "echo", func(_ context.Context, id string, r echoReq) (echoResp, error) {
		return echoResp{S: id + ":" + r.S}, nil
	})
	bus.Handle(mux, "fail", func(_ context.Context, id string, r echoReq) (echoResp, error) {
		return echoResp{}, schema.Errorf(http.StatusNotFound, "context %s not found", r.S)
	})
	sub, err := mux.Subscribe(nc, "sbx1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	got, err := bus.Request[echoResp](ctx, nc, schema.SubjectOp("sbx1", "echo"), echoReq{S: "hi"})
	if err != nil || got.S != "sbx1:hi" {
		t.Fatalf("echo = %v, %v", got, err)
	}
	_, err = bus.Request[echoResp](ctx, nc, schema.SubjectOp("sbx1", "fail"), echoReq{S: "c1"})
	if !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("fail = %v", err)
	}
	_, err = bus.Request[echoResp](ctx, nc, schema.SubjectOp("sbx1", "nope"), echoReq{})
	if schema.CodeOf(err) != http.StatusNotImplemented {
		t.Fatalf("unknown op = %v", err)
	}
	_ = sub.Unsubscribe()
	_, err = bus.Request[echoResp](ctx, nc, schema.SubjectOp("sbx1", "echo"), echoReq{})
	if !errors.Is(err, bus.ErrNoOwner) {
		t.Fatalf("after unsubscribe = %v, want ErrNoOwner", err)
	}
}

func TestStreamLargeInOrder(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	wc := bustest.Connect(t, ns)
	rc := bustest.Connect(t, ns)
	r, err := bus.OpenStream(rc, "sbx", "s1", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// The writer is on another connection and is not started by a request: make the subscription known.
	if err := rc.Flush(); err != nil {
		t.Fatal(err)
	}
	w, err := bus.NewStreamWriter(wc, "sbx", "s1")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 5<<20+123)
	for i := range want {
		want[i] = byte(i % 251)
	}
	go func() {
		if _, err := w.Write(want); err != nil {
			t.Error(err)
		}
		_ = w.Close(nil)
	}()
	var got bytes.Buffer
	for {
		chunk, err := r.Next(t.Context())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(chunk) > bus.DefaultChunkSize {
			t.Fatalf("chunk of %d bytes exceeds chunk size", len(chunk))
		}
		got.Write(chunk)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes, want %d, equal=%v", got.Len(), len(want), bytes.Equal(got.Bytes(), want))
	}
}

func TestStreamErrorAndCancel(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	nc := bustest.Connect(t, ns)

	// An error end reaches the reader with its code.
	r, _ := bus.OpenStream(nc, "sbx", "e1", 5*time.Second)
	w, _ := bus.NewStreamWriter(nc, "sbx", "e1")
	_, _ = w.Write([]byte("x"))
	_ = w.Close(schema.Errorf(http.StatusNotFound, "gone"))
	if c, err := r.Next(t.Context()); err != nil || string(c) != "x" {
		t.Fatalf("first chunk %q %v", c, err)
	}
	if _, err := r.Next(t.Context()); schema.CodeOf(err) != http.StatusNotFound {
		t.Fatalf("end error = %v", err)
	}
	r.Close()

	// A reader that goes away makes a blocked writer stop instead of waiting forever.
	r2, _ := bus.OpenStream(nc, "sbx", "c1", 5*time.Second)
	w2, _ := bus.NewStreamWriter(nc, "sbx", "c1")
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := w2.Write([]byte("chunk")); err != nil {
				errc <- err
				return
			}
		}
	}()
	if _, err := r2.Next(t.Context()); err != nil {
		t.Fatal(err)
	}
	r2.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, bus.ErrStreamCanceled) {
			t.Fatalf("writer error = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writer did not notice the cancel")
	}
	select {
	case <-w2.Canceled():
	default:
		t.Fatal("Canceled() not closed")
	}
}

func TestStreamIdle(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	nc := bustest.Connect(t, ns)
	r, _ := bus.OpenStream(nc, "sbx", "i1", 50*time.Millisecond)
	defer r.Close()
	if _, err := r.Next(t.Context()); !errors.Is(err, bus.ErrStreamIdle) {
		t.Fatalf("got %v, want ErrStreamIdle", err)
	}
}

func TestDeletedRecordIsNotFound(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{})
	ctx := t.Context()
	r := schema.Record{ID: schema.NewSandboxID(), State: schema.StateKilled}
	rev, err := b.CreateRecord(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, gotRev, err := b.GetRecord(ctx, r.ID); err != nil || gotRev != rev {
		t.Fatalf("GetRecord = rev %d, %v; want rev %d", gotRev, err, rev)
	}
	if err := b.DeleteRecord(ctx, r.ID, rev); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.GetRecord(ctx, r.ID); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("deleted record: %v, want not found", err)
	}
	if all, err := b.ListRecords(ctx); err != nil || len(all) != 0 {
		t.Fatalf("ListRecords after delete = %v, %v", all, err)
	}
	// A new record may reuse the key after a delete.
	if _, err := b.CreateRecord(ctx, r); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
}
