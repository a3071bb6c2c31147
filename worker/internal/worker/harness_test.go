package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime/process"
	"fleetbox.dev/worker/internal/worker"
)

const python = "/usr/bin/python3"

// harness is one NATS server and a client playing the apiserver's part.
type harness struct {
	ns  *server.Server
	bus *bus.Bus
	log *slog.Logger
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	if _, err := os.Stat(python); err != nil {
		tb.Fatalf("the tests need %s: %v", python, err)
	}
	log := testLogger(tb)
	ns := bustest.RunJetStream(tb)
	return &harness{ns: ns, bus: bustest.Open(tb, ns, bus.Config{WorkerTTL: 3 * time.Second, CreateAckWait: 5 * time.Second}), log: log}
}

// testWorker is a worker started in-process through worker.New, as main starts it.
type testWorker struct {
	*worker.Worker
	data   string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

type workerOpt func(*worker.Config)

func withCapacity(n int) workerOpt { return func(c *worker.Config) { c.Capacity = n } }
func withID(id string) workerOpt   { return func(c *worker.Config) { c.ID = id } }

// startWorker runs a worker with its own connection and data directory until the test ends.
func (h *harness) startWorker(tb testing.TB, opts ...workerOpt) *testWorker {
	tb.Helper()
	return h.startWorkerIn(tb, tb.TempDir(), opts...)
}

func (h *harness) startWorkerIn(tb testing.TB, data string, opts ...workerOpt) *testWorker {
	tb.Helper()
	rt, err := process.New(process.Config{DataDir: data, Logger: h.log})
	if err != nil {
		tb.Fatal(err)
	}
	b := bustest.Open(tb, h.ns, h.bus.Config)
	cfg := worker.Config{
		ID: "w-" + schema.NewToken(4), Bus: b, Runtime: rt, Python: python, Capacity: 64,
		FetchWait: 300 * time.Millisecond, Logger: h.log,
		// As main configures it: kernels forked from the fork server.
		KernelModuleDir: filepath.Join(data, "kernel"), KernelZygote: true,
	}
	for _, o := range opts {
		o(&cfg)
	}
	w, err := worker.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tw := &testWorker{Worker: w, data: data, cancel: cancel, done: make(chan error, 1)}
	go func() { tw.done <- w.Run(ctx) }()
	tb.Cleanup(func() { tw.stop(tb) })
	return tw
}

// stop drains the worker and waits for Run to return (idempotent).
func (tw *testWorker) stop(tb testing.TB) {
	tb.Helper()
	tw.once.Do(func() {
		tw.cancel()
		select {
		case err := <-tw.done:
			if err != nil {
				tb.Errorf("worker Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			tb.Error("worker did not stop")
		}
	})
}

// sandboxDirs lists the sandbox directories the worker's runtime has on disk.
func (tw *testWorker) sandboxDirs(tb testing.TB) []string {
	entries, err := os.ReadDir(filepath.Join(tw.data, "sandboxes"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// create does what the apiserver does: a pending record, then the create command (Nats-Msg-Id = id).
func (h *harness) create(tb testing.TB, endAt time.Time) string {
	tb.Helper()
	id := schema.NewSandboxID()
	rec := schema.Record{
		ID: id, TemplateID: "base", State: schema.StatePending, EnvdVersion: schema.EnvdVersion,
		EnvVars: map[string]string{"GREETING": "hello"}, CPUCount: 2, MemoryMB: 512,
		CreatedAt: time.Now().UTC(), EndAt: endAt,
	}
	if _, err := h.bus.CreateRecord(context.Background(), rec); err != nil {
		tb.Fatal(err)
	}
	h.publishCreate(tb, id, id)
	return id
}

func (h *harness) publishCreate(tb testing.TB, id, msgID string) {
	tb.Helper()
	data, _ := json.Marshal(schema.CreateCommand{SandboxID: id})
	if _, err := h.bus.JS.Publish(context.Background(), schema.SubjectCreate, data, jetstream.WithMsgID(msgID)); err != nil {
		tb.Fatal(err)
	}
}

// waitState polls the record until it is in state want.
func (h *harness) waitState(tb testing.TB, id string, want schema.State) schema.Record {
	tb.Helper()
	var rec schema.Record
	bustest.Eventually(tb, 20*time.Second, 5*time.Millisecond, func() error {
		r, _, err := h.bus.GetRecord(context.Background(), id)
		if err != nil {
			return err
		}
		rec = r
		if r.State != want {
			return fmt.Errorf("sandbox %s is %s (%s), want %s", id, r.State, r.Reason, want)
		}
		return nil
	})
	return rec
}

// createRunning creates a sandbox that ends in an hour and waits until it runs.
func (h *harness) createRunning(tb testing.TB) string {
	tb.Helper()
	id := h.create(tb, time.Now().Add(time.Hour))
	h.waitState(tb, id, schema.StateRunning)
	return id
}

// line is one decoded NDJSON line of an execution.
type line map[string]any

func (l line) typ() string { s, _ := l["type"].(string); return s }

// execute runs code through the bus as the apiserver does: open the stream, request, read to the end.
func execute(ctx context.Context, nc *nats.Conn, id string, req schema.ExecuteRequest) ([]line, error) {
	req.Stream = schema.NewToken(8)
	r, err := bus.OpenStream(nc, id, req.Stream, 30*time.Second)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := bus.Request[schema.Empty](ctx, nc, schema.SubjectOp(id, schema.OpExecute), req); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for {
		chunk, err := r.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read stream after %d bytes: %w", buf.Len(), err)
		}
		buf.Write(chunk)
	}
	var out []line
	for _, raw := range bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n")) {
		var l line
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("line %.100q: %w", raw, err)
		}
		out = append(out, l)
	}
	if len(out) == 0 || out[len(out)-1].typ() != "end_of_execution" {
		return out, fmt.Errorf("stream did not end with end_of_execution: %v", out)
	}
	return out, nil
}

func (h *harness) run(tb testing.TB, id, contextID, code string) []line {
	tb.Helper()
	lines, err := execute(tb.Context(), h.bus.NC, id, schema.ExecuteRequest{Code: code, ContextID: contextID})
	if err != nil {
		tb.Fatalf("execute %q: %v", code, err)
	}
	return lines
}

// text returns the main result's text, stdout and the error name of an execution.
func summary(lines []line) (result, stdout, errName string) {
	for _, l := range lines {
		switch l.typ() {
		case "result":
			if m, _ := l["is_main_result"].(bool); m {
				result, _ = l["text"].(string)
			}
		case "stdout":
			s, _ := l["text"].(string)
			stdout += s
		case "error":
			errName, _ = l["name"].(string)
		}
	}
	return result, stdout, errName
}

// testLogger logs through the test's output until the test ends (workers may log a little later).
func testLogger(tb testing.TB) *slog.Logger {
	var done atomic.Bool
	tb.Cleanup(func() { done.Store(true) })
	w := writerFunc(func(p []byte) (int, error) {
		if done.Load() {
			return len(p), nil
		}
		return tb.Output().Write(p)
	})
	level := slog.LevelWarn
	if os.Getenv("WORKER_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
