package process_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/process"
)

// A snapshot holds the sandbox's files, directories (read-only ones too) and symlinks (never followed,
// even out of the root), but not the runtime's state file, sockets or fifos.
func TestSnapshotContents(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rt := newRuntime(t, dir)
	sb, err := rt.Create(t.Context(), runtime.Spec{ID: schema.NewSandboxID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background()) })
	psb := sb.(*process.Sandbox)
	// A process makes the holder start, which writes the state file.
	cmd, err := sb.Command(t.Context(), []string{"sh", "-c", "mkdir -p ro/sub && echo deep > ro/sub/f && chmod 555 ro/sub ro"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	home := filepath.Join(psb.Root(), "home", "user")
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"out": outside, "rel": "ro/sub/f"} {
		if err := os.Symlink(target, filepath.Join(home, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(home, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(psb.Root(), "tmp", "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := os.Stat(filepath.Join(psb.Root(), ".fleetbox-sandbox.json")); err != nil {
		t.Fatalf("no state file to leave out: %v", err)
	}

	if err := psb.Snapshot(t.Context(), "s1"); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, "snapshots", "s1")
	for _, p := range []string{".fleetbox-sandbox.json", "home/user/fifo", "tmp/sock"} {
		if _, err := os.Lstat(filepath.Join(snap, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s in the snapshot: %v", p, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(snap, "home/user/ro/sub/f")); err != nil || string(b) != "deep\n" {
		t.Errorf("file below read-only directories: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(snap, "home/user/ro")); err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("read-only directory: %v, %v", fi.Mode(), err)
	}
	for name, want := range map[string]string{"out": outside, "rel": "ro/sub/f"} {
		if got, err := os.Readlink(filepath.Join(snap, "home/user", name)); err != nil || got != want {
			t.Errorf("link %s: %q, %v; want %q", name, got, err, want)
		}
	}
	// Deleting a snapshot with read-only directories works.
	if err := rt.DeleteSnapshot(t.Context(), "s1"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "snapshots")); len(entries) != 0 {
		t.Errorf("left in snapshots/: %v", entries)
	}
}

// A snapshot that fails half way leaves nothing; Cleanup removes what a crash left half way but never a
// snapshot.
func TestSnapshotFailuresAndCleanup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rt := newRuntime(t, dir)
	sb, err := rt.Create(t.Context(), runtime.Spec{ID: schema.NewSandboxID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background()) })
	psb := sb.(*process.Sandbox)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := psb.Snapshot(ctx, "s1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Snapshot: %v", err)
	}
	snaps := filepath.Join(dir, "snapshots")
	if entries, _ := os.ReadDir(snaps); len(entries) != 0 {
		t.Fatalf("a failed snapshot left %v", entries)
	}
	if err := psb.Snapshot(t.Context(), "s1"); err != nil {
		t.Fatalf("the name of a failed snapshot is not free: %v", err)
	}
	for _, leftover := range []string{".tmp-s2-123", ".del-s3-456"} {
		if err := os.MkdirAll(filepath.Join(snaps, leftover, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := newRuntime(t, dir).Cleanup(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(snaps)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"s1"}) {
		t.Errorf("after Cleanup snapshots/ holds %q, want [s1]", names)
	}
	if err := psb.Snapshot(t.Context(), "s4"); !errors.Is(err, runtime.ErrDestroyed) {
		t.Errorf("Snapshot after Destroy: %v, want ErrDestroyed", err)
	}
}
