package worker_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime/runtimetest"
)

// pauseOp and resumeOp ask the owner as the apiserver does.
func pauseOp(tb testing.TB, h *harness, id string) (schema.Record, error) {
	return op[schema.Record](tb, h.bus.NC, id, schema.OpPause, schema.PauseRequest{})
}

func resumeOp(tb testing.TB, h *harness, id string, endAt time.Time) (schema.Record, error) {
	return op[schema.Record](tb, h.bus.NC, id, schema.OpResume, schema.ResumeRequest{EndAt: endAt})
}

// fileSize returns the size of a sandbox file as the host sees it.
func fileSize(tb testing.TB, w *testWorker, id, p string) int64 {
	tb.Helper()
	fi, err := os.Stat(filepath.Join(w.data, "sandboxes", id, p))
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.startWorker(t)
	id := h.createRunning(t)
	// Kernel memory survives: a variable set before the pause is there after it.
	if _, _, ename := summary(h.run(t, id, "", "x = 41")); ename != "" {
		t.Fatal(ename)
	}
	// A background process that writes a line every 10 ms stops writing while paused.
	mustStart(t, h.bus.NC, id, sh(`while :; do echo tick >> "$HOME/ticks"; sleep 0.01; done`))
	runtimetest.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(w.data, "sandboxes", id, "home/user/ticks"))
		return err == nil
	}, "no ticks")

	rec, err := pauseOp(t, h, id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != schema.StatePaused || rec.PausedAt.IsZero() || time.Until(rec.EndAt) < 24*time.Hour {
		t.Fatalf("record after pause: %+v", rec)
	}
	if _, err := pauseOp(t, h, id); err == nil {
		t.Fatal("second pause succeeded")
	} else {
		wantCode(t, err, http.StatusConflict, "already paused")
	}
	time.Sleep(50 * time.Millisecond) // a write that was under way lands
	before := fileSize(t, w, id, "home/user/ticks")
	time.Sleep(200 * time.Millisecond)
	if after := fileSize(t, w, id, "home/user/ticks"); after != before {
		t.Fatalf("paused process kept writing: %d -> %d bytes", before, after)
	}
	// Data-plane operations are refused while paused; lifecycle ones are served.
	_, err = startProcess(t, h.bus.NC, id, sh("true"))
	wantCode(t, err, http.StatusConflict, "paused")
	if _, err := op[schema.TimeoutReply](t, h.bus.NC, id, schema.OpTimeout, schema.TimeoutRequest{EndAt: time.Now().Add(48 * time.Hour)}); err != nil {
		t.Fatalf("timeout of a paused sandbox: %v", err)
	}

	endAt := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	rec, err = resumeOp(t, h, id, endAt)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != schema.StateRunning || !rec.PausedAt.IsZero() || !rec.EndAt.Equal(endAt) {
		t.Fatalf("record after resume: %+v", rec)
	}
	_, err = resumeOp(t, h, id, endAt)
	wantCode(t, err, http.StatusConflict, "not paused")
	grown := fileSize(t, w, id, "home/user/ticks")
	runtimetest.Eventually(t, func() bool { return fileSize(t, w, id, "home/user/ticks") > grown }, "process did not continue after resume")
	if _, out, ename := summary(h.run(t, id, "", "print(x + 1)")); ename != "" || strings.TrimSpace(out) != "42" {
		t.Fatalf("kernel state after resume: %q %s", out, ename)
	}
}

func TestKillPaused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.startWorker(t)
	id := h.createRunning(t)
	pgid := pgidOf(t, h, id)
	if _, err := pauseOp(t, h, id); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := bus.Request[schema.Empty](ctx, h.bus.NC, schema.SubjectOp(id, schema.OpKill), schema.KillRequest{}); err != nil {
		t.Fatalf("kill paused: %v", err)
	}
	runtimetest.Eventually(t, func() bool { return !runtimetest.GroupAlive(pgid) }, "paused processes survived the kill")
	if rec := h.waitState(t, id, schema.StateKilled); rec.Reason != schema.ReasonKilled {
		t.Fatalf("reason %q", rec.Reason)
	}
	if w.Running() != 0 {
		t.Fatalf("running %d", w.Running())
	}
}

func TestAutoPauseAtTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := schema.NewSandboxID()
	rec := schema.Record{
		ID: id, TemplateID: "base", State: schema.StatePending, EnvdVersion: schema.EnvdVersion, OnTimeout: "pause",
		CreatedAt: time.Now().UTC(), EndAt: time.Now().Add(500 * time.Millisecond),
	}
	if _, err := h.bus.CreateRecord(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	h.publishCreate(t, id, id)
	paused := h.waitState(t, id, schema.StatePaused)
	if time.Until(paused.EndAt) < 24*time.Hour {
		t.Fatalf("auto-paused sandbox ends at %v", paused.EndAt)
	}
	if _, err := resumeOp(t, h, id, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotAndPlacedCreate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.startWorker(t)
	id := h.createRunning(t)
	runSh(t, h.bus.NC, id, `echo kept > "$HOME/state.txt"; chmod 600 "$HOME/state.txt"`)

	snapID := schema.NewSandboxID()
	snap, err := op[schema.Snapshot](t, h.bus.NC, id, schema.OpSnapshot, schema.SnapshotRequest{ID: snapID, Names: []string{"my-snap"}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.ID != snapID || snap.Worker != w.ID() || snap.SandboxID != id || snap.TemplateID != "base" || snap.Names[0] != "my-snap" {
		t.Fatalf("snapshot %+v", snap)
	}
	if got, err := h.bus.GetSnapshot(t.Context(), "my-snap"); err != nil || got.ID != snapID {
		t.Fatalf("stored snapshot %+v, %v", got, err)
	}
	// The source keeps running (it was paused only for the capture).
	if rec, _, _ := h.bus.GetRecord(t.Context(), id); rec.State != schema.StateRunning {
		t.Fatalf("source is %s after the snapshot", rec.State)
	}
	runSh(t, h.bus.NC, id, "true")
	_, err = op[schema.Snapshot](t, h.bus.NC, id, schema.OpSnapshot, schema.SnapshotRequest{ID: snapID})
	wantCode(t, err, http.StatusConflict, "exists")
	kill(t, h, id)

	// A sandbox from the snapshot, placed on the worker that holds it.
	newID := schema.NewSandboxID()
	rec := schema.Record{
		ID: newID, TemplateID: "base", Snapshot: snapID, State: schema.StatePending, EnvdVersion: schema.EnvdVersion,
		CreatedAt: time.Now().UTC(), EndAt: time.Now().Add(time.Hour),
	}
	if _, err := h.bus.CreateRecord(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := bus.Request[schema.Empty](ctx, h.bus.NC, schema.SubjectWorkerOp(w.ID(), schema.OpWorkerCreate), schema.CreateCommand{SandboxID: newID}); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, newID, schema.StateRunning)
	res := runSh(t, h.bus.NC, newID, `cat "$HOME/state.txt"; stat -c %a "$HOME/state.txt"`)
	if out := res.stdout; out != "kept\n600\n" {
		t.Fatalf("file in the sandbox from the snapshot: %q", out)
	}
	// Placing the same create again is refused: the record is no longer pending.
	_, err = bus.Request[schema.Empty](ctx, h.bus.NC, schema.SubjectWorkerOp(w.ID(), schema.OpWorkerCreate), schema.CreateCommand{SandboxID: newID})
	wantCode(t, err, http.StatusConflict, "not pending")

	// Deleting the snapshot removes its files and record; a sandbox from it then fails to start.
	if _, err := bus.Request[schema.Empty](ctx, h.bus.NC, schema.SubjectWorkerOp(w.ID(), schema.OpSnapshotDelete), schema.SnapshotDeleteRequest{ID: snapID}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.bus.GetSnapshot(t.Context(), snapID); !errors.Is(err, bus.ErrSnapshotNotFound) {
		t.Fatalf("snapshot record after delete: %v", err)
	}
	gone := schema.NewSandboxID()
	rec.ID, rec.CreatedAt = gone, time.Now().UTC()
	if _, err := h.bus.CreateRecord(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Request[schema.Empty](ctx, h.bus.NC, schema.SubjectWorkerOp(w.ID(), schema.OpWorkerCreate), schema.CreateCommand{SandboxID: gone}); err != nil {
		t.Fatal(err)
	}
	if failed := h.waitState(t, gone, schema.StateFailed); !strings.Contains(failed.Reason, snapID) {
		t.Fatalf("failure reason %q does not name the snapshot", failed.Reason)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	ms, err := op[[]schema.Metric](t, h.bus.NC, id, schema.OpMetrics, schema.MetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].CPUCount != 2 || ms[0].MemTotal != 512<<20 || ms[0].MemUsed < 0 || ms[0].Timestamp.IsZero() {
		t.Fatalf("first sample %+v", ms)
	}
	// With a kernel and 1 MiB written, memory and disk show.
	h.run(t, id, "", "import os; open(os.environ['HOME'] + '/big', 'wb').write(b'x' * (1 << 20))")
	ms, err = op[[]schema.Metric](t, h.bus.NC, id, schema.OpMetrics, schema.MetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	last := ms[len(ms)-1]
	if len(ms) != 2 || last.MemUsed <= 0 || last.DiskUsed < 1<<20 || !last.Timestamp.After(ms[0].Timestamp) {
		t.Fatalf("samples %+v", ms)
	}
	// Paused sandboxes are sampled too; killed ones are not found.
	if _, err := pauseOp(t, h, id); err != nil {
		t.Fatal(err)
	}
	if _, err := op[[]schema.Metric](t, h.bus.NC, id, schema.OpMetrics, schema.MetricsRequest{}); err != nil {
		t.Fatalf("metrics of a paused sandbox: %v", err)
	}
}

// The process runtime cannot enforce egress policies: a create that asks for one is left for a worker
// that can, and changing one is a 501, rather than either being ignored.
func TestEgressRefusedByTheProcessRuntime(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := schema.NewSandboxID()
	rec := schema.Record{
		ID: id, TemplateID: "base", State: schema.StatePending, EnvdVersion: schema.EnvdVersion,
		Egress: &schema.Egress{}, CreatedAt: time.Now().UTC(), EndAt: time.Now().Add(time.Hour),
	}
	if _, err := h.bus.CreateRecord(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	h.publishCreate(t, id, id)
	// The worker hands the command back (for a worker that can) instead of claiming it.
	time.Sleep(time.Second)
	if cur, _, err := h.bus.GetRecord(t.Context(), id); err != nil || cur.State != schema.StatePending {
		t.Fatalf("record of a create this worker cannot serve: %+v, %v", cur, err)
	}
	running := h.createRunning(t)
	_, err := op[schema.Record](t, h.bus.NC, running, schema.OpNetwork, schema.NetworkRequest{Egress: schema.Egress{AllowAll: true, Deny: []string{"10.0.0.0/8"}}})
	wantCode(t, err, http.StatusNotImplemented, "-runtime jail")
	// A policy that allows everything needs no enforcement: accepted and recorded.
	changed, err := op[schema.Record](t, h.bus.NC, running, schema.OpNetwork, schema.NetworkRequest{Egress: schema.Egress{AllowAll: true}})
	if err != nil || changed.Egress == nil || !changed.Egress.AllowAll {
		t.Fatalf("allow-all policy: %+v, %v", changed.Egress, err)
	}
	// And so is a create that asks for internet access (the Python SDK's default).
	open := schema.NewSandboxID()
	rec = schema.Record{
		ID: open, TemplateID: "base", State: schema.StatePending, EnvdVersion: schema.EnvdVersion,
		Egress: &schema.Egress{AllowAll: true}, CreatedAt: time.Now().UTC(), EndAt: time.Now().Add(time.Hour),
	}
	if _, err := h.bus.CreateRecord(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	h.publishCreate(t, open, open)
	h.waitState(t, open, schema.StateRunning)
}

// A create placed on a worker can take its last free slot, although the claim loop holds a slot while it
// waits for queued commands.
func TestPlacedCreateTakesTheLastSlot(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.startWorker(t, withCapacity(2))
	id := h.createRunning(t)
	snapID := schema.NewSandboxID()
	if _, err := op[schema.Snapshot](t, h.bus.NC, id, schema.OpSnapshot, schema.SnapshotRequest{ID: snapID}); err != nil {
		t.Fatal(err)
	}
	placed := schema.NewSandboxID()
	rec := schema.Record{
		ID: placed, TemplateID: "base", Snapshot: snapID, State: schema.StatePending, EnvdVersion: schema.EnvdVersion,
		CreatedAt: time.Now().UTC(), EndAt: time.Now().Add(time.Hour),
	}
	if _, err := h.bus.CreateRecord(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := bus.Request[schema.Empty](ctx, h.bus.NC, schema.SubjectWorkerOp(w.ID(), schema.OpWorkerCreate), schema.CreateCommand{SandboxID: placed}); err != nil {
		t.Fatalf("placed create with one slot free: %v", err)
	}
	h.waitState(t, placed, schema.StateRunning)
}
