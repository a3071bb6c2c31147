package process_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/process"
	"fleetbox.dev/worker/internal/runtime/runtimetest"
)

func newRuntimeB(b *testing.B) (*process.Runtime, error) {
	return process.New(process.Config{DataDir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
}

func newRuntime(t *testing.T, dir string) *process.Runtime {
	t.Helper()
	rt, err := process.New(process.Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestConformance(t *testing.T) {
	t.Parallel()
	runtimetest.Run(t, func(t *testing.T) runtime.Runtime { return newRuntime(t, t.TempDir()) })
}

// A worker that crashed leaves sandboxes behind; a new runtime on the same directory removes them.
func TestCleanupAfterCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	crashed := newRuntime(t, dir)
	sb, err := crashed.Create(t.Context(), runtime.Spec{ID: schema.NewSandboxID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background()) }) // if the test fails before its Cleanup
	psb := sb.(*process.Sandbox)
	cmd, err := sb.Command(context.Background(), []string{"sleep", "1000"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	if !runtimetest.GroupAlive(psb.Pgid()) {
		t.Fatal("sandbox group not alive")
	}

	restarted := newRuntime(t, dir)
	if err := restarted.Cleanup(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	runtimetest.Eventually(t, func() bool { return !runtimetest.GroupAlive(psb.Pgid()) }, "group %d survived", psb.Pgid())
	if _, err := os.Stat(psb.Root()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("root survived: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "sandboxes"))
	if len(entries) != 0 {
		t.Fatalf("left in sandboxes/: %v", entries)
	}
}

// Each sandbox has its own process group, led by the holder, and every process joins it.
func TestProcessGroup(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, t.TempDir())
	var groups []int
	for range 2 {
		sb, err := rt.Create(t.Context(), runtime.Spec{ID: schema.NewSandboxID()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sb.Destroy(context.Background()) })
		cmd, err := sb.Command(t.Context(), []string{"sh", "-c", "ps -o pgid= -p $$"}, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		pgid := sb.(*process.Sandbox).Pgid()
		if got, err := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || got != pgid {
			t.Fatalf("process in group %q, want %d", out, pgid)
		}
		groups = append(groups, pgid)
	}
	if groups[0] == groups[1] || groups[0] == os.Getpid() {
		t.Fatalf("groups not distinct: %v", groups)
	}
}
