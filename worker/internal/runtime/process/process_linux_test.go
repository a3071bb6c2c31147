package process_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
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
