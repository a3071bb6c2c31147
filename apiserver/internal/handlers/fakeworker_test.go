package handlers

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
)

// These tests run the control plane against a real NATS server and a fake worker that answers the
// owner and worker operations through bus.Mux the way the worker's contract (schema/messages.go) says,
// writing the records and snapshots it would write.

const (
	testKey       = "e2b_0123456789abcdef"
	fakeWorkerID  = "fake-worker"
	pausedRetain  = time.Hour
	testOpTimeout = 2 * time.Second
)

type fakeWorker struct {
	t   *testing.T
	bus *bus.Bus
	ops *bus.Mux

	mu        sync.Mutex
	subs      map[string]bool
	deleted   []string      // snapshot ids deleted through OpSnapshotDelete
	createErr *schema.Error // OpWorkerCreate answers this when set
	delay     time.Duration // every owner op sleeps this long first
	// hooks run first in the owner op they are named by; an error is the op's answer.
	hooks map[string]func(ctx context.Context, id string) error
}

type testEnv struct {
	t      *testing.T
	url    string
	bus    *bus.Bus
	svc    *lifecycle.Service
	worker *fakeWorker
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{})
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc := lifecycle.New(b, log)
	svc.CreateTimeout, svc.OpTimeout, svc.SnapshotTimeout, svc.PlaceTimeout = 5*time.Second, testOpTimeout, testOpTimeout, testOpTimeout
	srv := httptest.NewServer(Routes(Deps{Sandboxes: svc, Log: log, APIKeys: []string{testKey}}))
	t.Cleanup(srv.Close)

	// The fake worker logs nowhere: a reply it sends after its test ended (a deliberately slow one)
	// must not write to the test's output.
	quiet := slog.New(slog.DiscardHandler)
	fw := &fakeWorker{t: t, bus: bustest.Open(t, ns, bus.Config{}), ops: bus.NewMux(30*time.Second, quiet), subs: map[string]bool{}}
	fw.register()
	wmux := bus.NewMux(30*time.Second, quiet)
	bus.Handle(wmux, schema.OpWorkerCreate, fw.opWorkerCreate)
	bus.Handle(wmux, schema.OpSnapshotDelete, fw.opSnapshotDelete)
	sub, err := wmux.SubscribeWorker(fw.bus.NC, fakeWorkerID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &testEnv{t: t, url: srv.URL, bus: b, svc: svc, worker: fw}
}

func (fw *fakeWorker) register() {
	bus.Handle(fw.ops, schema.OpPause, func(ctx context.Context, id string, req schema.PauseRequest) (schema.Record, error) {
		if err := fw.before(ctx, schema.OpPause, id); err != nil {
			return schema.Record{}, err
		}
		end := req.EndAt
		if end.IsZero() {
			end = time.Now().Add(pausedRetain)
		}
		return fw.update(ctx, id, schema.StateRunning, "already paused", func(r *schema.Record) {
			r.State, r.PausedAt, r.EndAt = schema.StatePaused, time.Now().UTC(), end.UTC()
		})
	})
	bus.Handle(fw.ops, schema.OpResume, func(ctx context.Context, id string, req schema.ResumeRequest) (schema.Record, error) {
		if err := fw.before(ctx, schema.OpResume, id); err != nil {
			return schema.Record{}, err
		}
		return fw.update(ctx, id, schema.StatePaused, "not paused", func(r *schema.Record) {
			r.State, r.PausedAt, r.EndAt = schema.StateRunning, time.Time{}, req.EndAt.UTC()
		})
	})
	bus.Handle(fw.ops, schema.OpTimeout, func(ctx context.Context, id string, req schema.TimeoutRequest) (schema.TimeoutReply, error) {
		if err := fw.before(ctx, schema.OpTimeout, id); err != nil {
			return schema.TimeoutReply{}, err
		}
		rec, _, err := fw.bus.UpdateRecord(ctx, id, func(r schema.Record) (schema.Record, error) {
			if !req.ExtendOnly || req.EndAt.After(r.EndAt) {
				r.EndAt = req.EndAt.UTC()
			}
			return r, nil
		})
		return schema.TimeoutReply{Record: rec}, err
	})
	bus.Handle(fw.ops, schema.OpSnapshot, func(ctx context.Context, id string, req schema.SnapshotRequest) (schema.Snapshot, error) {
		if err := fw.before(ctx, schema.OpSnapshot, id); err != nil {
			return schema.Snapshot{}, err
		}
		rec, _, err := fw.bus.GetRecord(ctx, id)
		if err != nil {
			return schema.Snapshot{}, err
		}
		snap := schema.Snapshot{
			ID: req.ID, Names: req.Names, SandboxID: id, TemplateID: rec.TemplateID, CPUCount: rec.CPUCount,
			MemoryMB: rec.MemoryMB, DiskSizeMB: rec.DiskSizeMB, EnvVars: rec.EnvVars, Worker: fakeWorkerID,
			Runtime: "fake", CreatedAt: time.Now().UTC(),
		}
		return snap, fw.bus.PutSnapshot(ctx, snap)
	})
}

// update moves a record that is in state from by fn, or answers 409 with msg.
func (fw *fakeWorker) update(ctx context.Context, id string, from schema.State, msg string, fn func(*schema.Record)) (schema.Record, error) {
	rec, _, err := fw.bus.UpdateRecord(ctx, id, func(r schema.Record) (schema.Record, error) {
		if r.State != from {
			return r, schema.Errorf(http.StatusConflict, "sandbox %s is %s", id, msg)
		}
		fn(&r)
		return r, nil
	})
	return rec, err
}

// before sleeps the configured delay, then runs the hook of op, if any.
func (fw *fakeWorker) before(ctx context.Context, op, id string) error {
	fw.mu.Lock()
	d, hook := fw.delay, fw.hooks[op]
	fw.mu.Unlock()
	time.Sleep(d)
	if hook != nil {
		return hook(ctx, id)
	}
	return nil
}

// setHook installs hook for op (nil removes it).
func (fw *fakeWorker) setHook(op string, hook func(ctx context.Context, id string) error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.hooks == nil {
		fw.hooks = map[string]func(context.Context, string) error{}
	}
	fw.hooks[op] = hook
}

func (fw *fakeWorker) errOf(p **schema.Error) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if *p == nil {
		return nil
	}
	return *p
}

// serve makes the fake worker the owner of sandbox id.
func (fw *fakeWorker) serve(id string) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.subs[id] {
		return
	}
	sub, err := fw.ops.Subscribe(fw.bus.NC, id)
	if err != nil {
		fw.t.Error(err)
		return
	}
	fw.subs[id] = true
	fw.t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// opWorkerCreate claims a pending record placed on this worker, answers, then starts it.
func (fw *fakeWorker) opWorkerCreate(ctx context.Context, _ string, cmd schema.CreateCommand) (schema.Empty, error) {
	if err := fw.errOf(&fw.createErr); err != nil {
		return schema.Empty{}, err
	}
	_, _, err := fw.bus.UpdateRecord(ctx, cmd.SandboxID, func(r schema.Record) (schema.Record, error) {
		next, err := r.Transition(schema.StateStarting, "")
		next.Worker = fakeWorkerID
		return next, err
	})
	if err != nil {
		return schema.Empty{}, err
	}
	fw.serve(cmd.SandboxID)
	go func() {
		_, _, err := fw.bus.UpdateRecord(context.Background(), cmd.SandboxID, func(r schema.Record) (schema.Record, error) {
			next, err := r.Transition(schema.StateRunning, "")
			next.StartedAt = time.Now().UTC()
			return next, err
		})
		if err != nil {
			fw.t.Errorf("start %s: %v", cmd.SandboxID, err)
		}
	}()
	return schema.Empty{}, nil
}

func (fw *fakeWorker) opSnapshotDelete(ctx context.Context, _ string, req schema.SnapshotDeleteRequest) (schema.Empty, error) {
	if _, err := fw.bus.GetSnapshot(ctx, req.ID); err != nil {
		return schema.Empty{}, err
	}
	fw.mu.Lock()
	fw.deleted = append(fw.deleted, req.ID)
	fw.mu.Unlock()
	return schema.Empty{}, fw.bus.DeleteSnapshot(ctx, req.ID)
}

// running stores a running record owned by the fake worker (served when serve is true) and returns it.
func (e *testEnv) running(serve bool, edit ...func(*schema.Record)) schema.Record {
	e.t.Helper()
	now := time.Now().UTC()
	rec := schema.Record{
		ID: schema.NewSandboxID(), TemplateID: "base", Alias: "base", State: schema.StateRunning, Worker: fakeWorkerID,
		EnvdVersion: schema.EnvdVersion, CPUCount: 2, MemoryMB: 512, DiskSizeMB: 1024, EnvVars: map[string]string{"A": "1", "B": "1"},
		OnTimeout: "kill", CreatedAt: now, StartedAt: now, EndAt: now.Add(5 * time.Minute),
	}
	for _, f := range edit {
		f(&rec)
	}
	if _, err := e.bus.CreateRecord(e.t.Context(), rec); err != nil {
		e.t.Fatal(err)
	}
	if serve {
		e.worker.serve(rec.ID)
	}
	return rec
}

func (e *testEnv) record(id string) schema.Record {
	e.t.Helper()
	rec, _, err := e.bus.GetRecord(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

// errBody decodes E2B's error body and checks that its code is the status.
func (r response) errMessage(t *testing.T) string {
	t.Helper()
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Code != r.code || e.Message == "" {
		t.Fatalf("error body %q for status %d: want {code: %d, message}", r.body, r.code, r.code)
	}
	return e.Message
}

func (e *testEnv) do(method, path, body string) response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("X-API-KEY", testKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// decode unmarshals a successful response's body into v.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return v
}
