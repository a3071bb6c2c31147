package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime/runtimetest"
)

// The test binary doubles as the worker binary: with this variable set it runs main instead of tests,
// so the tests below exercise the real command, flags, signals and exit, as separate processes.
const runMainEnv = "FLEETBOX_WORKER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// workerProcess is a worker running as a separate process.
type workerProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // its exit status, once done is closed
}

func (p *workerProcess) signal(sig os.Signal) { _ = p.cmd.Process.Signal(sig) }

// wait waits up to d for the process to exit.
func (p *workerProcess) wait(d time.Duration) (exited bool) {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

func startWorkerProcess(t *testing.T, natsURL, data, id string) *workerProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-nats", natsURL, "-data", data, "-id", id, "-capacity", "4",
		"-python", "/usr/bin/python3", "-log-format", "json", "-log-level", "debug")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	logf, err := os.Create(filepath.Join(t.TempDir(), "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &workerProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		// Drain, so the worker's sandboxes go with it; kill only a worker that does not stop.
		p.signal(syscall.SIGTERM)
		if !p.wait(20 * time.Second) {
			p.signal(syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("worker log:\n%s", b)
		}
	})
	return p
}

func createSandbox(t *testing.T, b *bus.Bus) string {
	t.Helper()
	id := schema.NewSandboxID()
	rec := schema.Record{ID: id, TemplateID: "base", State: schema.StatePending, EndAt: time.Now().Add(time.Hour)}
	if _, err := b.CreateRecord(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(schema.CreateCommand{SandboxID: id})
	if _, err := b.JS.Publish(t.Context(), schema.SubjectCreate, data, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
	return id
}

func waitState(t *testing.T, b *bus.Bus, id string, want schema.State) schema.Record {
	t.Helper()
	var rec schema.Record
	bustest.Eventually(t, 30*time.Second, 10*time.Millisecond, func() error {
		r, _, err := b.GetRecord(context.Background(), id)
		if err != nil {
			return err
		}
		if rec = r; r.State != want {
			return fmt.Errorf("%s is %s (%s), want %s", id, r.State, r.Reason, want)
		}
		return nil
	})
	return rec
}

// sandboxPgid starts a code context in the sandbox (its kernel is the sandbox's first process, which
// creates the process group) and reads the group from the sandbox's state file.
func sandboxPgid(t *testing.T, b *bus.Bus, data, id string) int {
	t.Helper()
	if _, err := bus.Request[schema.CodeContext](t.Context(), b.NC, schema.SubjectOp(id, schema.OpContextCreate), schema.ContextCreateRequest{}); err != nil {
		t.Fatal(err)
	}
	var state []byte
	bustest.Eventually(t, 20*time.Second, 10*time.Millisecond, func() error {
		var err error
		state, err = os.ReadFile(filepath.Join(data, "sandboxes", id, ".fleetbox-sandbox.json"))
		return err
	})
	var st struct{ Pgid int }
	if err := json.Unmarshal(state, &st); err != nil || st.Pgid <= 1 {
		t.Fatalf("state %s: %v", state, err)
	}
	return st.Pgid
}

func sandboxDirs(t *testing.T, data string) []string {
	entries, err := os.ReadDir(filepath.Join(data, "sandboxes"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// SIGTERM drains: sandboxes killed as "worker drained", nothing left on disk, heartbeat withdrawn, exit 0.
func TestSignalDrains(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{})
	data := t.TempDir()
	p := startWorkerProcess(t, ns.ClientURL(), data, "w-signal")
	id := createSandbox(t, b)
	waitState(t, b, id, schema.StateRunning)
	pgid := sandboxPgid(t, b, data, id)

	p.signal(syscall.SIGTERM)
	if !p.wait(30 * time.Second) {
		t.Fatal("worker did not exit after SIGTERM")
	}
	if p.err != nil {
		t.Fatalf("worker exit: %v", p.err)
	}
	if rec := waitState(t, b, id, schema.StateKilled); rec.Reason != schema.ReasonWorkerDrained {
		t.Fatalf("reason %q", rec.Reason)
	}
	if runtimetest.GroupAlive(pgid) {
		t.Fatalf("sandbox group %d outlived the worker", pgid)
	}
	if dirs := sandboxDirs(t, data); len(dirs) != 0 {
		t.Fatalf("left on disk: %v", dirs)
	}
	if _, err := b.Workers.Get(t.Context(), "w-signal"); err == nil {
		t.Fatal("heartbeat still present")
	}
}

// kill -9 leaves the sandboxes' processes and files behind. The restarted worker adopts the sandbox its
// record still says runs there (its processes from the dead run are killed, its files stay, and it serves
// again), and removes the one whose record ended while it was down (as the reaper does after the TTL).
func TestCrashRestart(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{})
	data := t.TempDir()
	p := startWorkerProcess(t, ns.ClientURL(), data, "w-crash")
	kept, ended := createSandbox(t, b), createSandbox(t, b)
	waitState(t, b, kept, schema.StateRunning)
	waitState(t, b, ended, schema.StateRunning)
	pgKept, pgEnded := sandboxPgid(t, b, data, kept), sandboxPgid(t, b, data, ended)

	p.signal(syscall.SIGKILL)
	<-p.done
	if !runtimetest.GroupAlive(pgKept) || !runtimetest.GroupAlive(pgEnded) {
		t.Fatalf("the crash already took groups %d, %d (the test proves nothing)", pgKept, pgEnded)
	}
	if _, _, err := b.UpdateRecord(t.Context(), ended, func(r schema.Record) (schema.Record, error) {
		return r.Transition(schema.StateLost, schema.ReasonWorkerLost)
	}); err != nil {
		t.Fatal(err)
	}
	startWorkerProcess(t, ns.ClientURL(), data, "w-crash")
	for _, pgid := range []int{pgKept, pgEnded} {
		runtimetest.Eventually(t, func() bool { return !runtimetest.GroupAlive(pgid) }, "group %d survived the restart", pgid)
	}
	runtimetest.Eventually(t, func() bool {
		dirs := sandboxDirs(t, data)
		return len(dirs) == 1 && dirs[0] == kept
	}, "sandbox dirs %v, want only the adopted %s", sandboxDirs(t, data), kept)
	// The adopted sandbox is served again: a new kernel reports a new process group.
	if rec := waitState(t, b, kept, schema.StateRunning); rec.Worker != "w-crash" {
		t.Fatalf("adopted record %+v", rec)
	}
	if pg := sandboxPgid(t, b, data, kept); pg == pgKept {
		t.Fatalf("adopted sandbox still in the dead run's group %d", pg)
	}
	// And the restarted worker serves new sandboxes.
	waitState(t, b, createSandbox(t, b), schema.StateRunning)
}

func TestDefaultID(t *testing.T) {
	t.Parallel()
	a, b := defaultID("/data/a"), defaultID("/data/b")
	if a == b || a != defaultID("/data/a") {
		t.Fatalf("ids %q %q: want stable and distinct per data dir", a, b)
	}
	host, _ := os.Hostname()
	if !strings.HasPrefix(a, strings.ToLower(host)[:min(3, len(host))]) {
		t.Fatalf("id %q not derived from host %q", a, host)
	}
	for _, c := range a {
		if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz0123456789-", c) {
			t.Fatalf("id %q has %q", a, c)
		}
	}
}
