package worker_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

// countingHandler counts log records whose message contains a substring.
type countingHandler struct {
	slog.Handler
	sub string
	n   *atomic.Int64
}

func (c countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, c.sub) {
		c.n.Add(1)
	}
	return c.Handler.Handle(ctx, r)
}

func (c countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{c.Handler.WithAttrs(as), c.sub, c.n}
}

func (c countingHandler) WithGroup(g string) slog.Handler {
	return countingHandler{c.Handler.WithGroup(g), c.sub, c.n}
}

// While NATS is down the claim loop backs off instead of spinning, and it claims again once NATS is back.
func TestNATSOutage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var fetchFailures atomic.Int64
	h.log = slog.New(countingHandler{h.log.Handler(), "fetch create command", &fetchFailures})
	w := h.startWorker(t)
	running := h.createRunning(t)

	port := h.ns.Addr().(*net.TCPAddr).Port
	store := h.ns.StoreDir()
	h.ns.Shutdown()
	h.ns.WaitForShutdown()
	outage := 3 * time.Second
	time.Sleep(outage)
	if n := fetchFailures.Load(); n > 15 {
		t.Fatalf("%d failed fetches in a %v outage: the loop spins", n, outage)
	}
	ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Host: "127.0.0.1", Port: port, StoreDir: store, ServerName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.stop(t) // before the server goes: the drain writes records
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	h.ns = ns

	// The sandbox from before the outage still answers, and new creates are claimed.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		lines, err := execute(ctx, h.bus.NC, running, schema.ExecuteRequest{Code: "'back'"})
		if err == nil {
			if res, _, _ := summary(lines); res != "back" {
				t.Fatalf("result %q", res)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("sandbox unreachable after the outage: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	id := h.create(t, time.Now().Add(time.Hour))
	h.waitState(t, id, schema.StateRunning)
	if w.Running() != 2 {
		t.Fatalf("running %d", w.Running())
	}
}
