package worker_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/bhyve"
	"fleetbox.dev/worker/internal/runtime/bhyve/bhyvetest"
	"fleetbox.dev/worker/internal/runtime/runtimetest"
	"fleetbox.dev/worker/internal/worker"
)

// TestMain lets this test binary be what the bhyve runtime re-executes: the agent client and the fake
// guests (package bhyvetest). Every other test runs as without it.
func TestMain(m *testing.M) { bhyvetest.Main(m) }

// withRuntime runs the worker on rt, with the sandboxes' Python (main's -python).
func withRuntime(rt runtime.Runtime) workerOpt {
	return func(c *worker.Config) { c.Runtime, c.Python = rt, python }
}

// A worker drives a bhyve sandbox end to end through the bus, as the apiserver does. The VM is a fake
// guest (bhyvetest): a real agent in a mount namespace of its own with the VM's shared home at
// /home/user; everything the worker runs in the sandbox (the code kernel, envd's processes) runs
// through the agent client and that agent, and its files are reached through the shared home only.
func TestBhyveSandbox(t *testing.T) {
	t.Parallel()
	bhyvetest.Require(t)
	h := newHarness(t)
	data := t.TempDir()
	rt, host := bhyvetest.NewRuntime(t, bhyve.Config{DataDir: data, Logger: h.log})
	w := h.startWorker(t, withRuntime(rt))
	nc := h.bus.NC

	id := h.createRunning(t)
	g := host.Guest("fbvm-" + id)
	if g == nil {
		t.Fatalf("no VM for sandbox %s; the host has %q", id, host.Objects())
	}
	vmDir := filepath.Join(data, "vms", id)
	home := filepath.Join(vmDir, "home")

	t.Run("run_code", func(t *testing.T) {
		if _, _, ename := summary(h.run(t, id, "", "x = 41")); ename != "" {
			t.Fatalf("x = 41: %s", ename)
		}
		if res, _, ename := summary(h.run(t, id, "", "x + 1")); res != "42" || ename != "" {
			t.Fatalf("x + 1: %q %s", res, ename)
		}
		// The kernel runs in the guest (not forked from a fork server on the host), as the sandbox
		// user, in its home, with the sandbox's environment.
		lines := h.run(t, id, "", "import os; print(os.getpid(), os.getuid(), os.getcwd(), os.environ['HOME'], os.environ['GREETING'], os.environ['E2B_SANDBOX_ID'])")
		_, out, ename := summary(lines)
		f := strings.Fields(out)
		if ename != "" || len(f) != 6 {
			t.Fatalf("kernel facts: %q %s", out, ename)
		}
		if pid, _ := strconv.Atoi(f[0]); !slices.Contains(g.Pids(), pid) {
			t.Errorf("kernel pid %d is not a process of the guest %v", pid, g.Pids())
		}
		if want := []string{"1000", "/home/user", "/home/user", "hello", id}; !slices.Equal(f[1:], want) {
			t.Errorf("kernel uid, cwd, HOME, GREETING, E2B_SANDBOX_ID: %q, want %q", f[1:], want)
		}
	})

	t.Run("run_code interrupted", func(t *testing.T) {
		// The interrupt reaches the kernel in the guest through its agent client (SIGINT forwarded).
		stream, r := openStream(t, nc, id)
		req := schema.ExecuteRequest{Stream: stream, Code: "import time\nprint('go', flush=True)\ntime.sleep(1000)"}
		if _, err := op[schema.Empty](t, nc, id, schema.OpExecute, req); err != nil {
			t.Fatal(err)
		}
		lr := lineReader{r: r}
		var all []string
		for {
			l, err := lr.next(t.Context())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("after %q: %v", all, err)
			}
			all = append(all, string(l))
			if strings.Contains(string(l), `"go\n"`) {
				if _, err := op[schema.Empty](t, nc, id, schema.OpInterrupt, schema.InterruptRequest{Stream: stream}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if s := strings.Join(all, "\n"); !strings.Contains(s, "KeyboardInterrupt") || !strings.Contains(all[len(all)-1], "end_of_execution") {
			t.Fatalf("stream: %s", s)
		}
		if res, _, ename := summary(h.run(t, id, "", "x")); res != "41" || ename != "" {
			t.Fatalf("kernel after the interrupt: %q %s", res, ename)
		}
	})

	t.Run("process with stdin and stdout", func(t *testing.T) {
		script := `while read l; do echo "got $l as $(id -u) in $(pwd)"; done; echo bye >&2; exit 3`
		ps := mustStart(t, nc, id, schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "sh", Args: []string{"-c", script}}, Stdin: true})
		if !slices.Contains(g.Clients(), int(ps.pid)) {
			t.Errorf("pid %d is not an agent client of the guest %v", ps.pid, g.Clients())
		}
		sel := schema.ProcessSelector{PID: ps.pid}
		if _, err := op[schema.Empty](t, nc, id, schema.OpProcessInput, schema.ProcessInputRequest{Process: sel, Stdin: []byte("hello\n")}); err != nil {
			t.Fatal(err)
		}
		if got, err := ps.readUntil(t.Context(), "got hello as 1000 in /home/user\n"); err != nil {
			t.Fatal(got, err)
		}
		if _, err := op[schema.Empty](t, nc, id, schema.OpProcessCloseStdin, schema.ProcessRequest{Process: sel}); err != nil {
			t.Fatal(err)
		}
		res := ps.wait(t.Context())
		if end := res.end(); res.err != nil || end == nil || end.End.ExitCode != 3 || res.stderr != "bye\n" {
			t.Fatalf("after stdin closed: %+v", res)
		}
	})

	t.Run("upload read by a process", func(t *testing.T) {
		e, err := writeFile(t, nc, id, "up/a.txt", strings.NewReader("from the client\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if e.Path != "/home/user/up/a.txt" || e.Size != 16 || e.Owner != "user" {
			t.Errorf("written entry %+v", e)
		}
		// The guest sees the upload in its home, made for the sandbox user.
		res := runSh(t, nc, id, "cat /home/user/up/a.txt && stat -c '%u:%g' /home/user/up /home/user/up/a.txt")
		if want := "from the client\n1000:1000\n1000:1000\n"; res.stdout != want {
			t.Errorf("seen from the guest: %q (stderr %q), want %q", res.stdout, res.stderr, want)
		}
		if b, err := os.ReadFile(filepath.Join(home, "up/a.txt")); err != nil || string(b) != "from the client\n" {
			t.Errorf("in the VM's shared home on the host: %q %v", b, err)
		}
	})

	t.Run("file of a process downloaded", func(t *testing.T) {
		runSh(t, nc, id, `printf 'from the guest\n' > /home/user/down.txt`)
		if got, err := readFile(t, nc, id, "/home/user/down.txt"); err != nil || string(got) != "from the guest\n" {
			t.Fatalf("download: %q %v", got, err)
		}
		// Outside /home/user the host reaches nothing of the VM: no file of the host's is served instead.
		_, err := readFile(t, nc, id, "/etc/hostname")
		wantCode(t, err, http.StatusBadRequest, "leaves the sandbox")
	})

	t.Run("pause and resume", func(t *testing.T) {
		if _, _, ename := summary(h.run(t, id, "", "kept = 'across the pause'")); ename != "" {
			t.Fatal(ename)
		}
		mustStart(t, nc, id, sh(`while :; do echo tick >> /home/user/ticks; sleep 0.01; done`))
		ticks := filepath.Join(home, "ticks")
		size := func() int64 {
			fi, err := os.Stat(ticks)
			if err != nil {
				return -1
			}
			return fi.Size()
		}
		runtimetest.Eventually(t, func() bool { return size() > 0 }, "no ticks")

		rec, err := pauseOp(t, h, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != schema.StatePaused {
			t.Fatalf("record after pause: %+v", rec)
		}
		// Every process of the guest is stopped: the agent, the kernel, the ticker.
		if !g.Stopped() {
			t.Fatalf("guest processes after pause: %s", states(g.Pids()))
		}
		before := size()
		time.Sleep(200 * time.Millisecond)
		if after := size(); after != before {
			t.Errorf("paused guest kept writing: %d -> %d bytes", before, after)
		}
		// The data plane is refused while paused.
		_, err = startProcess(t, nc, id, sh("true"))
		wantCode(t, err, http.StatusConflict, "paused")
		_, err = execute(t.Context(), nc, id, schema.ExecuteRequest{Code: "1"})
		wantCode(t, err, http.StatusConflict, "paused")
		_, err = readFile(t, nc, id, "/home/user/ticks")
		wantCode(t, err, http.StatusConflict, "paused")
		_, err = writeFile(t, nc, id, "/home/user/x", strings.NewReader("x"), nil)
		wantCode(t, err, http.StatusConflict, "paused")

		rec, err = resumeOp(t, h, id, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != schema.StateRunning {
			t.Fatalf("record after resume: %+v", rec)
		}
		for _, pid := range g.Pids() {
			if st := bhyvetest.ProcessState(pid); st == 'T' {
				t.Errorf("guest process %d still stopped after resume: %s", pid, states(g.Pids()))
				break
			}
		}
		grown := size()
		runtimetest.Eventually(t, func() bool { return size() > grown }, "the guest did not continue after resume")
		if _, out, ename := summary(h.run(t, id, "", "print(kept)")); ename != "" || out != "across the pause\n" {
			t.Fatalf("kernel state after resume: %q %s", out, ename)
		}
		if res := runSh(t, nc, id, "echo works"); res.stdout != "works\n" {
			t.Fatalf("process after resume: %+v", res)
		}
	})

	// Kill leaves nothing: no process of the guest, no agent client on the host, no VM directory, no
	// dataset, tap or vmm instance.
	pids, clients := g.Pids(), g.Clients()
	if len(pids) == 0 || len(clients) == 0 {
		t.Errorf("before the kill: guest processes %v, agent clients %v", pids, clients)
	}
	kill(t, h, id)
	rec, _, err := h.bus.GetRecord(t.Context(), id)
	if err != nil || rec.State != schema.StateKilled || rec.Reason != schema.ReasonKilled {
		t.Fatalf("record after kill: %+v, %v", rec, err)
	}
	for _, pid := range append(pids, clients...) {
		runtimetest.Eventually(t, func() bool { return !runtimetest.ProcessAlive(pid) }, "process %d of the VM survived its kill", pid)
	}
	if left := append(g.Pids(), g.Clients()...); len(left) > 0 {
		t.Errorf("processes of the VM after the kill: %v", left)
	}
	select {
	case <-g.Done():
	default:
		t.Error("the fake guest (the VM's bhyve) still runs")
	}
	if _, err := os.Stat(vmDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("VM directory left: %v", err)
	}
	if objs := host.Objects(); len(objs) > 0 {
		t.Errorf("left on the host: %q", objs)
	}
	if w.Running() != 0 {
		t.Errorf("worker holds %d sandboxes", w.Running())
	}

	// A worker that stops kills its VMs too.
	id = h.createRunning(t)
	g = host.Guest("fbvm-" + id)
	if g == nil {
		t.Fatalf("no VM for sandbox %s; the host has %q", id, host.Objects())
	}
	runSh(t, nc, id, "sleep 1000 >/dev/null 2>&1 & echo started")
	pids, clients = g.Pids(), g.Clients()
	w.stop(t)
	if rec := h.waitState(t, id, schema.StateKilled); rec.Reason != schema.ReasonWorkerDrained {
		t.Errorf("reason after drain %q", rec.Reason)
	}
	for _, pid := range append(pids, clients...) {
		runtimetest.Eventually(t, func() bool { return !runtimetest.ProcessAlive(pid) }, "process %d of the VM survived the drain", pid)
	}
	if objs := host.Objects(); len(objs) > 0 {
		t.Errorf("left on the host after the drain: %q", objs)
	}
	if _, err := os.Stat(filepath.Join(data, "vms", id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("VM directory left after the drain: %v", err)
	}
}

// states formats processes with their states, for failures.
func states(pids []int) string {
	var b strings.Builder
	for _, pid := range pids {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		fmt.Fprintf(&b, "%d %s %c; ", pid, strings.TrimSpace(string(cmd)), bhyvetest.ProcessState(pid))
	}
	return b.String()
}
