package process_test

import (
	"bytes"
	"context"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/process"
	"fleetbox.dev/worker/internal/runtime/runtimetest"
)

// A process that left the sandbox's group (setsid) survives Destroy's group kill, but Cleanup finds it by
// the E2B_SANDBOX_ID in its environment.
func TestCleanupFindsProcessesOutsideTheGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rt := newRuntime(t, dir)
	sb, err := rt.Create(t.Context(), runtime.Spec{ID: schema.NewSandboxID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background()) }) // if the test fails before its Cleanup
	cmd, err := sb.Command(context.Background(), []string{"sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 & echo $!"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.Eventually(t, func() bool { return runtimetest.ProcessAlive(pid) }, "escapee %d not running", pid)

	if err := newRuntime(t, dir).Cleanup(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	runtimetest.Eventually(t, func() bool { return !runtimetest.ProcessAlive(pid) }, "escapee %d survived Cleanup", pid)
}

// procState returns the state letter /proc shows for pid (0 if it is gone).
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// startEscapee starts a process in sb that leaves the sandbox's group (setsid) and keeps forking, and
// returns its pid.
func startEscapee(t *testing.T, sb runtime.Sandbox) int {
	t.Helper()
	cmd, err := sb.Command(context.Background(), []string{"sh", "-c",
		"setsid sh -c 'while :; do sleep 0.01; done' >/dev/null 2>&1 & echo $!"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.Eventually(t, func() bool { return runtimetest.ProcessAlive(pid) }, "escapee %d not running", pid)
	return pid
}

// Pause also stops the processes that left the sandbox's group, Resume continues them, Usage counts them,
// and Destroy of the paused sandbox kills them.
func TestPauseAndUsageReachProcessesOutsideTheGroup(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, t.TempDir())
	sb, err := rt.Create(t.Context(), runtime.Spec{ID: schema.NewSandboxID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background()) })
	psb := sb.(*process.Sandbox)
	pid := startEscapee(t, sb)

	u, err := psb.Usage(t.Context())
	if err != nil || u.Processes < 1 || u.MemoryBytes <= 0 || u.OpenFiles <= 0 {
		t.Fatalf("Usage with the escapee: %+v, %v", u, err)
	}
	if err := psb.Pause(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := procState(pid); s != 'T' {
		t.Fatalf("escapee %d in state %q after Pause, want T", pid, s)
	}
	if err := psb.Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	runtimetest.Eventually(t, func() bool { s := procState(pid); return s != 'T' && s != 0 }, "escapee %d still stopped after Resume", pid)
	if err := psb.Pause(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	runtimetest.Eventually(t, func() bool { return !runtimetest.ProcessAlive(pid) }, "paused escapee %d survived Destroy", pid)
}

// Usage reports the CPU time a busy process used between two calls.
func TestUsageCPUPercent(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, t.TempDir())
	sb, err := rt.Create(t.Context(), runtime.Spec{ID: schema.NewSandboxID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background()) })
	psb := sb.(*process.Sandbox)
	if u, err := psb.Usage(t.Context()); err != nil || u != (runtime.Usage{}) {
		t.Fatalf("Usage of a sandbox that never ran a process: %+v, %v", u, err)
	}
	cmd, err := sb.Command(context.Background(), []string{"sh", "-c", "while :; do :; done"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	first, err := psb.Usage(t.Context())
	if err != nil || first.CPUPercent != -1 {
		t.Fatalf("first Usage: %+v, %v; want CPUPercent -1 (no earlier reading)", first, err)
	}
	time.Sleep(500 * time.Millisecond)
	u, err := psb.Usage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// A spinning process gets some CPU in half a second even on a loaded machine, and no process of the
	// sandbox can use more than every core.
	if u.CPUPercent <= 0 || u.CPUPercent > float64(100*goruntime.NumCPU())+10 {
		t.Errorf("CPU percent %v of a spinning process", u.CPUPercent)
	}
	if u.MemoryLimitBytes != 0 || u.MaxProcesses != 0 || u.MaxOpenFiles != 0 {
		t.Errorf("limits %+v: the process runtime enforces none", u)
	}
}
