package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
)

// This file holds the subtests of the optional interfaces: Pauser, Snapshotter with SnapshotStore, and
// UsageReporter.

// testPauseResume: a process that appends to a file every 10 ms (forking a sleep each time) stops
// writing while its sandbox is paused and writes again after Resume; both are idempotent, and Destroy of
// a paused sandbox kills everything.
func testPauseResume(t *testing.T, rt runtime.Runtime) {
	sb := create(t, rt, nil)
	p, ok := sb.(runtime.Pauser)
	if !ok {
		t.Skip("runtime has no Pauser")
	}
	ctx := t.Context()
	// Nothing runs yet: pausing and resuming are no-ops that succeed.
	if err := p.Pause(ctx); err != nil {
		t.Fatalf("Pause of an idle sandbox: %v", err)
	}
	if err := p.Resume(ctx); err != nil {
		t.Fatalf("Resume of an idle sandbox: %v", err)
	}

	cmd, err := sb.Command(context.Background(), []string{"sh", "-c", "while :; do echo x >> tick.log; sleep 0.01; done"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	pids := append(startSleepers(t, sb), cmd.Process.Pid)
	log, err := sb.HostPath("/home/user/tick.log")
	if err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		fi, err := os.Stat(log)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	Eventually(t, func() bool { return size() > 0 }, "the writer never wrote")
	growing := func(what string) {
		t.Helper()
		from := size()
		Eventually(t, func() bool { return size() > from }, "%s: %s stayed at %d bytes", what, log, from)
	}
	growing("before Pause")

	for i := range 2 { // pausing a paused sandbox succeeds
		if err := p.Pause(ctx); err != nil {
			t.Fatalf("Pause %d: %v", i+1, err)
		}
	}
	time.Sleep(50 * time.Millisecond) // settle: a write under way when the signal came may still land
	before := size()
	time.Sleep(200 * time.Millisecond)
	if after := size(); after != before {
		t.Fatalf("paused: %s grew from %d to %d bytes", log, before, after)
	}
	for i := range 2 { // resuming a running sandbox succeeds
		if err := p.Resume(ctx); err != nil {
			t.Fatalf("Resume %d: %v", i+1, err)
		}
	}
	growing("after Resume")

	if err := p.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sb.Destroy(dctx); err != nil {
		t.Fatalf("Destroy of a paused sandbox: %v", err)
	}
	for _, pid := range pids {
		Eventually(t, func() bool { return !ProcessAlive(pid) }, "process %d survived Destroy of the paused sandbox", pid)
	}
	if err := p.Pause(ctx); !errors.Is(err, runtime.ErrDestroyed) {
		t.Errorf("Pause after Destroy: %v, want ErrDestroyed", err)
	}
	if err := p.Resume(ctx); !errors.Is(err, runtime.ErrDestroyed) {
		t.Errorf("Resume after Destroy: %v, want ErrDestroyed", err)
	}
}

// testSnapshot: a snapshot outlives its sandbox and Cleanup, a sandbox made from it has its files (with
// their modes and symlinks), a name is taken once, and a deleted snapshot is gone for good while the
// sandboxes made from it live on.
func testSnapshot(t *testing.T, rt runtime.Runtime) {
	store, isStore := rt.(runtime.SnapshotStore)
	src := create(t, rt, nil)
	snapper, isSnapper := src.(runtime.Snapshotter)
	if !isStore || !isSnapper {
		t.Skip("runtime has no Snapshotter/SnapshotStore")
	}
	ctx := t.Context()
	const content = "kept in the snapshot\n"
	const mode fs.FileMode = 0o604 // not what a umask makes; readable by the sandbox user
	if out := output(t, src, "sh", "-c", "mkdir -p snap && echo done"); out != "done\n" {
		t.Fatalf("mkdir: %q", out)
	}
	data := hostPath(t, src, "/home/user/snap/data.txt")
	if err := os.WriteFile(data, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("data.txt", filepath.Join(hostPath(t, src, "/home/user/snap"), "link")); err != nil {
		t.Fatal(err)
	}

	name := schema.NewSandboxID()
	t.Cleanup(func() { _ = store.DeleteSnapshot(context.Background(), name) })
	for _, bad := range []string{"", "../x", "Bad", "a@b"} {
		if err := snapper.Snapshot(ctx, bad); err == nil {
			_ = store.DeleteSnapshot(context.Background(), bad)
			t.Errorf("Snapshot(%q) succeeded", bad)
		}
	}
	if err := snapper.Snapshot(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := snapper.Snapshot(ctx, name); !errors.Is(err, runtime.ErrExists) {
		t.Errorf("second Snapshot(%s): %v, want ErrExists", name, err)
	}
	if err := src.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rt.Cleanup(ctx, nil); err != nil {
		t.Fatal(err)
	}
	listed(t, store, name, true)

	restored := createSpec(t, rt, runtime.Spec{ID: schema.NewSandboxID(), TemplateID: "base", Snapshot: name})
	got := hostPath(t, restored, "/home/user/snap/data.txt")
	if b, err := os.ReadFile(got); err != nil || string(b) != content {
		t.Errorf("restored file: %q, %v", b, err)
	}
	if fi, err := os.Lstat(got); err != nil || fi.Mode() != mode {
		t.Errorf("restored file mode: %v, %v; want %v", fi.Mode(), err, mode)
	}
	if target, err := os.Readlink(filepath.Join(hostPath(t, restored, "/home/user/snap"), "link")); err != nil || target != "data.txt" {
		t.Errorf("restored link: %q, %v", target, err)
	}
	if out := output(t, restored, "cat", "snap/link"); out != content {
		t.Errorf("cat in the restored sandbox: %q", out)
	}

	mustNotCreate(t, rt, runtime.Spec{ID: schema.NewSandboxID(), TemplateID: "base", Snapshot: schema.NewSandboxID()}, fs.ErrNotExist)
	mustNotCreate(t, rt, runtime.Spec{ID: schema.NewSandboxID(), TemplateID: "base", Snapshot: "../x"}, nil)

	for i := range 2 { // deleting a missing snapshot is not an error
		if err := store.DeleteSnapshot(ctx, name); err != nil {
			t.Fatalf("DeleteSnapshot %d: %v", i+1, err)
		}
	}
	listed(t, store, name, false)
	mustNotCreate(t, rt, runtime.Spec{ID: schema.NewSandboxID(), TemplateID: "base", Snapshot: name}, fs.ErrNotExist)
	if out := output(t, restored, "cat", "snap/data.txt"); out != content {
		t.Errorf("the sandbox made from a deleted snapshot lost its file: %q", out)
	}
}

// listed checks whether Snapshots lists name.
func listed(t *testing.T, store runtime.SnapshotStore, name string, want bool) {
	t.Helper()
	names, err := store.Snapshots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, name) != want {
		t.Errorf("Snapshots() = %q; listing %s: want %v", names, name, want)
	}
}

// mustNotCreate checks that Create fails for spec (with an error matching want, if set).
func mustNotCreate(t *testing.T, rt runtime.Runtime, spec runtime.Spec, want error) {
	t.Helper()
	sb, err := rt.Create(t.Context(), spec)
	if err == nil {
		_ = sb.Destroy(context.Background())
		t.Errorf("Create(%+v) succeeded", spec)
		return
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("Create(%+v): %v, want %v", spec, err, want)
	}
}

// testUsage: a sandbox's usage counts its processes and their memory; on an isolated runtime the memory
// limit of the spec is reported and enforced.
func testUsage(t *testing.T, rt runtime.Runtime) {
	sb := create(t, rt, nil)
	ur, ok := sb.(runtime.UsageReporter)
	if !ok {
		t.Skip("runtime has no UsageReporter")
	}
	ctx := t.Context()
	idle, err := ur.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if idle.Processes > 0 {
		t.Errorf("idle sandbox: %d processes", idle.Processes)
	}
	startSleepers(t, sb)
	var u runtime.Usage
	poll(t, 10*time.Second, func() error {
		if u, err = ur.Usage(ctx); err != nil {
			return err
		}
		if u.Processes < 2 || u.MemoryBytes <= 0 {
			return fmt.Errorf("with two sleepers: %+v", u)
		}
		return nil
	})
	if u.OpenFiles == 0 || u.OpenFiles < -1 {
		t.Errorf("open files %d: want -1 (unknown) or > 0", u.OpenFiles)
	}
	if u.CPUPercent < 0 && u.CPUPercent != -1 {
		t.Errorf("CPU percent %v: want -1 (unknown) or >= 0", u.CPUPercent)
	}
	if !rt.Capabilities().Isolated {
		return
	}

	limited := createSpec(t, rt, runtime.Spec{ID: schema.NewSandboxID(), TemplateID: "base", MemoryMB: 64})
	lu, err := limited.(runtime.UsageReporter).Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lu.MemoryLimitBytes != 64<<20 {
		t.Errorf("memory limit %d, want %d", lu.MemoryLimitBytes, 64<<20)
	}
	// Allocate (and touch: bytearray zero-fills) 256 MiB and hold it: the process must fail or be killed
	// well before it would exit 0.
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd, err := limited.Command(cctx, []string{"python3", "-c", "import time; b = bytearray(256 << 20); time.sleep(20); print('survived')"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a 256 MiB allocation in a 64 MiB sandbox succeeded: %s", out)
	}
	if cctx.Err() != nil {
		t.Fatalf("the 256 MiB allocation neither failed nor finished in time: %v", err)
	}
	t.Logf("256 MiB allocation in a 64 MiB sandbox: %v: %s", err, out)
}

// hostPath is sb.HostPath or the test fails.
func hostPath(t *testing.T, sb runtime.Sandbox, p string) string {
	t.Helper()
	h, err := sb.HostPath(p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// poll calls cond until it returns nil, for up to timeout, and fails the test with its last error.
func poll(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
