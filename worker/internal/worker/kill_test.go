package worker_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime/runtimetest"
)

// kill asks the owner to kill a sandbox, as the apiserver does.
func kill(tb testing.TB, h *harness, id string) {
	tb.Helper()
	if _, err := bus.Request[schema.Empty](tb.Context(), h.bus.NC, schema.SubjectOp(id, schema.OpKill), schema.KillRequest{}); err != nil {
		tb.Fatalf("kill %s: %v", id, err)
	}
}

// pgidOf asks the sandbox's code for its process group.
func pgidOf(tb testing.TB, h *harness, id string) int {
	tb.Helper()
	// A child process that outlives the execution must die with the sandbox too.
	_, out, _ := summary(h.run(tb, id, "", "import os, subprocess\nsubprocess.Popen(['sleep', '1000'])\nprint(os.getpgrp())"))
	pgid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || pgid <= 1 || !runtimetest.GroupAlive(pgid) {
		tb.Fatalf("pgid %q: %v", out, err)
	}
	return pgid
}

func TestKill(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.startWorker(t)
	id := h.createRunning(t)
	pgid := pgidOf(t, h, id)

	kill(t, h, id)
	rec, _, err := h.bus.GetRecord(t.Context(), id)
	if err != nil || rec.State != schema.StateKilled || rec.Reason != schema.ReasonKilled || rec.EndedAt.IsZero() {
		t.Fatalf("record after kill: %+v, %v", rec, err)
	}
	runtimetest.Eventually(t, func() bool { return !runtimetest.GroupAlive(pgid) }, "process group %d still alive", pgid)
	if _, err := os.Stat(filepath.Join(w.data, "sandboxes", id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("sandbox directory left: %v", err)
	}
	if _, err := bus.Request[schema.Empty](t.Context(), h.bus.NC, schema.SubjectOp(id, schema.OpKill), schema.KillRequest{}); !errors.Is(err, bus.ErrNoOwner) {
		t.Fatalf("op after kill: %v, want ErrNoOwner", err)
	}
	if w.Running() != 0 {
		t.Fatalf("running %d", w.Running())
	}
}

// A kill during an execution ends its stream with an error instead of leaving the reader waiting.
func TestKillDuringExecution(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	stream := schema.NewToken(8)
	r, err := bus.OpenStream(h.bus.NC, id, stream, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	req := schema.ExecuteRequest{Stream: stream, Code: "import time\nprint('x', flush=True)\ntime.sleep(1000)"}
	if _, err := bus.Request[schema.Empty](t.Context(), h.bus.NC, schema.SubjectOp(id, schema.OpExecute), req); err != nil {
		t.Fatal(err)
	}
	var seen string
	for !strings.Contains(seen, `"stdout"`) {
		chunk, err := r.Next(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		seen += string(chunk)
	}
	kill(t, h, id)
	for {
		_, err := r.Next(t.Context())
		if err == nil {
			continue
		}
		if schema.CodeOf(err) != http.StatusBadGateway {
			t.Fatalf("execution ended with %v, want 502", err)
		}
		break
	}
}

func TestTTL(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.startWorker(t)
	id := h.create(t, time.Now().Add(1500*time.Millisecond))
	h.waitState(t, id, schema.StateRunning)
	pgid := pgidOf(t, h, id)
	rec := h.waitState(t, id, schema.StateKilled)
	if rec.Reason != schema.ReasonTimeout {
		t.Fatalf("reason %q", rec.Reason)
	}
	runtimetest.Eventually(t, func() bool { return !runtimetest.GroupAlive(pgid) }, "process group %d still alive", pgid)
	if dirs := w.sandboxDirs(t); len(dirs) != 0 {
		t.Fatalf("dirs %v", dirs)
	}
}

func TestTimeoutOp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	firstEnd := time.Now().Add(time.Second)
	id := h.create(t, firstEnd)
	h.waitState(t, id, schema.StateRunning)
	timeout := func(endAt time.Time, extendOnly bool) schema.Record {
		t.Helper()
		rep, err := bus.Request[schema.TimeoutReply](t.Context(), h.bus.NC, schema.SubjectOp(id, schema.OpTimeout), schema.TimeoutRequest{EndAt: endAt, ExtendOnly: extendOnly})
		if err != nil {
			t.Fatal(err)
		}
		return rep.Record
	}
	later := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	if rec := timeout(later, false); !rec.EndAt.Equal(later) {
		t.Fatalf("endAt %v, want %v", rec.EndAt, later)
	}
	// Extend-only never shortens.
	if rec := timeout(time.Now().Add(time.Minute), true); !rec.EndAt.Equal(later) {
		t.Fatalf("extend-only shortened to %v", rec.EndAt)
	}
	// The original timer no longer applies: the sandbox serves an execution after its time.
	time.Sleep(time.Until(firstEnd) + 300*time.Millisecond)
	if res, _, _ := summary(h.run(t, id, "", "'alive'")); res != "alive" {
		t.Fatalf("result %q", res)
	}
	// Shortening (setTimeout) applies at once.
	timeout(time.Now().Add(200*time.Millisecond), false)
	if rec := h.waitState(t, id, schema.StateKilled); rec.Reason != schema.ReasonTimeout {
		t.Fatalf("reason %q", rec.Reason)
	}
}
