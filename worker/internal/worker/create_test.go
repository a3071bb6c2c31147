package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/process"
	"fleetbox.dev/worker/internal/runtime/runtimetest"
	"fleetbox.dev/worker/internal/worker"
)

func TestCreateRunning(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.startWorker(t)
	endAt := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	id := h.create(t, endAt)
	rec := h.waitState(t, id, schema.StateRunning)
	if rec.Worker != w.ID() {
		t.Errorf("worker = %q, want %q", rec.Worker, w.ID())
	}
	if rec.StartedAt.IsZero() || !rec.EndAt.Equal(endAt) {
		t.Errorf("startedAt %v, endAt %v (want %v)", rec.StartedAt, rec.EndAt, endAt)
	}
	if got := w.sandboxDirs(t); !slices.Equal(got, []string{id}) {
		t.Errorf("sandbox dirs %v", got)
	}
	// The sandbox's env vars reach its code.
	_, out, _ := summary(h.run(t, id, "", "import os; print(os.environ['GREETING'], os.environ['E2B_SANDBOX_ID'])"))
	if out != "hello "+id+"\n" {
		t.Errorf("env in sandbox: %q", out)
	}
}

// Creates that are not pending any more (cancelled, already claimed) are dropped, not started.
func TestCreateNotPendingDropped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.startWorker(t)
	id := schema.NewSandboxID()
	rec := schema.Record{ID: id, TemplateID: "base", State: schema.StatePending, EndAt: time.Now().Add(time.Hour)}
	rev, err := h.bus.CreateRecord(t.Context(), rec)
	if err != nil {
		t.Fatal(err)
	}
	killed, _ := rec.Transition(schema.StateKilled, schema.ReasonKilled)
	if _, err := h.bus.CompareAndSet(t.Context(), rec, rev, killed); err != nil {
		t.Fatal(err)
	}
	h.publishCreate(t, id, id)
	waitQueueEmpty(t, h)
	if n := w.Running(); n != 0 {
		t.Fatalf("%d sandboxes started for a killed record", n)
	}
	if got, _, _ := h.bus.GetRecord(t.Context(), id); got.State != schema.StateKilled {
		t.Fatalf("record changed to %s", got.State)
	}
}

// The same create delivered twice (an apiserver retry after the dedupe window) with two workers
// running starts exactly one sandbox: the CAS pending → starting is the mutex.
func TestDuplicateCreateTwoWorkers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w1, w2 := h.startWorker(t), h.startWorker(t)
	for range 5 {
		id := h.create(t, time.Now().Add(time.Hour))
		h.publishCreate(t, id, id+"-retry")
		rec := h.waitState(t, id, schema.StateRunning)
		waitQueueEmpty(t, h)
		var dirs []string
		for _, w := range []*testWorker{w1, w2} {
			for _, d := range w.sandboxDirs(t) {
				if d == id {
					dirs = append(dirs, w.ID())
				}
			}
		}
		if len(dirs) != 1 || dirs[0] != rec.Worker {
			t.Fatalf("sandbox %s on %v, record says %s", id, dirs, rec.Worker)
		}
	}
	if n := w1.Running() + w2.Running(); n != 5 {
		t.Fatalf("%d sandboxes running, want 5", n)
	}
}

// A worker at capacity does not fetch: the next create stays pending (and unfetched) until a slot
// frees up.
func TestCapacity(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t, withCapacity(1))
	first := h.createRunning(t)
	second := h.create(t, time.Now().Add(time.Hour))
	// The command is neither delivered nor claimed while the only slot is taken. (The first command's ack
	// lands just after its record says running: wait for it before asserting the steady state.)
	consumerState := func() (ackPending, pending int, err error) {
		cons, err := h.bus.Commands.Consumer(t.Context(), schema.ConsumerCreate)
		if err != nil {
			return 0, 0, err
		}
		ci, err := cons.Info(t.Context())
		if err != nil {
			return 0, 0, err
		}
		return ci.NumAckPending, int(ci.NumPending), nil
	}
	bustest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		ack, pending, err := consumerState()
		if err == nil && (ack != 0 || pending != 1) {
			err = fmt.Errorf("ack pending %d, pending %d", ack, pending)
		}
		return err
	})
	for range 20 {
		ack, pending, err := consumerState()
		if err != nil {
			t.Fatal(err)
		}
		if ack != 0 || pending != 1 {
			t.Fatalf("ack pending %d, pending %d: the full worker fetched", ack, pending)
		}
		if rec, _, _ := h.bus.GetRecord(t.Context(), second); rec.State != schema.StatePending {
			t.Fatalf("second sandbox is %s", rec.State)
		}
		time.Sleep(25 * time.Millisecond)
	}
	kill(t, h, first)
	h.waitState(t, second, schema.StateRunning)
}

// On start-up a worker removes what an earlier run left: sandbox directories and processes, and the
// records it owned.
// A restarted worker adopts the sandboxes its records say run (or are paused) on it, and removes the
// rest of what the earlier run left: sandboxes whose records are still starting, and those without records.
func TestRestartAdoptsAndCleansUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := t.TempDir()
	const id = "w-restarted"
	// What a crashed run leaves: live sandboxes with a process each, and their records.
	rt, err := process.New(process.Config{DataDir: data, Logger: h.log})
	if err != nil {
		t.Fatal(err)
	}
	leftover := func(states ...schema.State) (string, int) {
		t.Helper()
		sb, err := rt.Create(t.Context(), runtime.Spec{ID: schema.NewSandboxID()})
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := sb.Command(t.Context(), []string{"sh", "-c", `echo kept > "$HOME/f"; exec sleep 1000`}, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = cmd.Wait() }() // reap it once the restart kills it
		home, _ := sb.HostPath(runtime.SandboxHome)
		runtimetest.Eventually(t, func() bool {
			b, _ := os.ReadFile(filepath.Join(home, "f"))
			return string(b) == "kept\n"
		}, "leftover command did not write its file")
		if len(states) > 0 {
			rec := schema.Record{ID: sb.ID(), State: schema.StatePending, EnvdVersion: schema.EnvdVersion, EndAt: time.Now().Add(time.Hour)}
			if _, err := h.bus.CreateRecord(t.Context(), rec); err != nil {
				t.Fatal(err)
			}
			for _, st := range states {
				if _, _, err := h.bus.UpdateRecord(t.Context(), rec.ID, func(r schema.Record) (schema.Record, error) {
					r.Worker = id
					return r.Transition(st, "")
				}); err != nil {
					t.Fatal(err)
				}
			}
		}
		return sb.ID(), sb.(*process.Sandbox).Pgid()
	}
	running, pg1 := leftover(schema.StateStarting, schema.StateRunning)
	paused, pg2 := leftover(schema.StateStarting, schema.StateRunning, schema.StatePaused)
	starting, pg3 := leftover(schema.StateStarting)
	unrecorded, pg4 := leftover()

	h.startWorker(t) // another worker, whose sandbox the restart leaves alone
	other := h.createRunning(t)

	h.startWorkerIn(t, data, withID(id))
	got := h.waitState(t, starting, schema.StateKilled)
	if got.Reason != schema.ReasonWorkerRestarted || got.EndedAt.IsZero() {
		t.Errorf("reason %q, endedAt %v", got.Reason, got.EndedAt)
	}
	for _, pgid := range []int{pg1, pg2, pg3, pg4} {
		runtimetest.Eventually(t, func() bool { return !runtimetest.GroupAlive(pgid) }, "leftover group %d alive", pgid)
	}
	dirs := (&testWorker{data: data}).sandboxDirs(t)
	slices.Sort(dirs)
	want := []string{running, paused}
	slices.Sort(want)
	if !slices.Equal(dirs, want) {
		t.Errorf("sandbox dirs %v, want the adopted %v (not %s, %s)", dirs, want, starting, unrecorded)
	}
	// The adopted sandboxes serve again with their files: code runs in a fresh kernel.
	if r, _, _ := h.bus.GetRecord(t.Context(), running); r.State != schema.StateRunning || r.Worker != id {
		t.Fatalf("adopted record %+v", r)
	}
	if _, out, ename := summary(h.run(t, running, "", "import os; print(open(os.environ['HOME'] + '/f').read().strip())")); ename != "" || strings.TrimSpace(out) != "kept" {
		t.Fatalf("run in the adopted sandbox: %q %s", out, ename)
	}
	// The paused one is still paused until resumed.
	_, err = startProcess(t, h.bus.NC, paused, sh("true"))
	wantCode(t, err, http.StatusConflict, "paused")
	if _, err := resumeOp(t, h, paused, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if res := runSh(t, h.bus.NC, paused, `cat "$HOME/f"`); res.stdout != "kept\n" {
		t.Fatalf("resumed adopted sandbox: %q", res.stdout)
	}
	if r, _, _ := h.bus.GetRecord(t.Context(), other); r.State != schema.StateRunning {
		t.Errorf("another worker's sandbox is %s", r.State)
	}
}

func TestHeartbeatAndDrain(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.startWorker(t, withCapacity(7))
	var info schema.WorkerInfo
	bustest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		e, err := h.bus.Workers.Get(context.Background(), w.ID())
		if err != nil {
			return err
		}
		return json.Unmarshal(e.Value(), &info)
	})
	if info.ID != w.ID() || info.Capacity != 7 || info.Runtime != process.Name || info.StartedAt.IsZero() {
		t.Fatalf("heartbeat %+v", info)
	}
	ids := []string{h.createRunning(t), h.createRunning(t)}
	bustest.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		e, err := h.bus.Workers.Get(context.Background(), w.ID())
		if err != nil {
			return err
		}
		_ = json.Unmarshal(e.Value(), &info)
		if info.Running != 2 {
			return fmt.Errorf("running %d", info.Running)
		}
		return nil
	})

	w.stop(t)
	for _, id := range ids {
		if r := h.waitState(t, id, schema.StateKilled); r.Reason != schema.ReasonWorkerDrained {
			t.Errorf("reason %q", r.Reason)
		}
	}
	if dirs := w.sandboxDirs(t); len(dirs) != 0 {
		t.Errorf("dirs left after drain: %v", dirs)
	}
	if _, err := h.bus.Workers.Get(t.Context(), w.ID()); err == nil {
		t.Error("heartbeat key still there after drain")
	}
}

// waitQueueEmpty waits until every create command was acked.
func waitQueueEmpty(tb testing.TB, h *harness) {
	tb.Helper()
	bustest.Eventually(tb, 20*time.Second, 10*time.Millisecond, func() error {
		si, err := h.bus.Commands.Info(context.Background())
		if err != nil {
			return err
		}
		if si.State.Msgs != 0 {
			return fmt.Errorf("%d commands in the queue", si.State.Msgs)
		}
		return nil
	})
}

// A command nobody can decode is dropped for good and does not stop the loop.
func TestGarbageCommandDropped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	if _, err := h.bus.JS.Publish(t.Context(), schema.SubjectCreate, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	waitQueueEmpty(t, h)
	h.createRunning(t)
}

// A command whose record is not (yet) readable is retried a few times, then dropped: a record that
// shows up late (a lagging replica) still gets its sandbox.
func TestCommandBeforeRecord(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	orphan := schema.NewSandboxID()
	h.publishCreate(t, orphan, orphan)

	late := schema.NewSandboxID()
	h.publishCreate(t, late, late)
	time.Sleep(50 * time.Millisecond)
	rec := schema.Record{ID: late, TemplateID: "base", State: schema.StatePending, EndAt: time.Now().Add(time.Hour)}
	if _, err := h.bus.CreateRecord(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, late, schema.StateRunning)
	waitQueueEmpty(t, h)
}

// A command redelivered after its claimer crashed between claim and ack (the record is starting, owned
// by a worker whose heartbeat is gone) is taken over, so the client's create still succeeds; one whose
// claimer is alive is left to it.
func TestClaimTakeover(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.startWorker(t)
	newStarting := func(owner string) string {
		id := schema.NewSandboxID()
		rec := schema.Record{ID: id, TemplateID: "base", State: schema.StatePending, EndAt: time.Now().Add(time.Hour)}
		rev, err := h.bus.CreateRecord(t.Context(), rec)
		if err != nil {
			t.Fatal(err)
		}
		starting, _ := rec.Transition(schema.StateStarting, "")
		starting.Worker = owner
		if _, err := h.bus.CompareAndSet(t.Context(), rec, rev, starting); err != nil {
			t.Fatal(err)
		}
		h.publishCreate(t, id, id)
		return id
	}
	ghost := newStarting("ghost-worker")
	got := h.waitState(t, ghost, schema.StateRunning)
	if got.Worker != w.ID() {
		t.Fatalf("taken over by %q, want %q", got.Worker, w.ID())
	}

	// A claimer with a heartbeat keeps its claim: the command comes back later instead.
	info, _ := json.Marshal(schema.WorkerInfo{ID: "busy-worker"})
	if _, err := h.bus.Workers.Put(t.Context(), "busy-worker", info); err != nil {
		t.Fatal(err)
	}
	busy := newStarting("busy-worker")
	time.Sleep(300 * time.Millisecond) // give a wrong takeover the chance to happen
	if rec, _, _ := h.bus.GetRecord(t.Context(), busy); rec.Worker != "busy-worker" || rec.State != schema.StateStarting {
		t.Fatalf("live claimer's record changed: %s by %s", rec.State, rec.Worker)
	}
}

// A worker short of memory stops claiming: creates go to a worker that has room.
func TestMemoryPlacement(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t, withID("w-full"), func(c *worker.Config) { c.MinFreeMemoryMB = 1 << 30 }) // never enough
	roomy := h.startWorker(t, withID("w-roomy"))
	for range 3 {
		id := h.create(t, time.Now().Add(time.Hour))
		if rec := h.waitState(t, id, schema.StateRunning); rec.Worker != roomy.ID() {
			t.Fatalf("sandbox placed on %q, want the worker with memory", rec.Worker)
		}
	}
}
