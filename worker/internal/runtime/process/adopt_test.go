package process_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/process"
	"fleetbox.dev/worker/internal/runtime/runtimetest"
)

// A restarted worker adopts a sandbox: the files stay, the dead worker's processes do not, and new
// processes run in a new group.
func TestAdopt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	crashed := newRuntime(t, dir)
	id := schema.NewSandboxID()
	sb, err := crashed.Create(t.Context(), runtime.Spec{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background()) })
	old := sb.(*process.Sandbox)
	cmd, err := sb.Command(context.Background(), []string{"sh", "-c", `echo kept > "$HOME/f"; exec sleep 1000`}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	runtimetest.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(old.Root(), "home/user/f"))
		return string(b) == "kept\n"
	}, "command did not write its file")

	restarted := newRuntime(t, dir)
	adopted, err := restarted.Adopt(t.Context(), runtime.Spec{ID: id, EnvVars: map[string]string{"FOO": "bar"}})
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.Eventually(t, func() bool { return !runtimetest.GroupAlive(old.Pgid()) }, "old group %d survived adoption", old.Pgid())
	if err := restarted.Cleanup(t.Context(), func(got string) bool { return got == id }); err != nil {
		t.Fatal(err)
	}
	out, err := mustOutput(t, adopted, `cat "$HOME/f"; echo "$FOO"`)
	if err != nil || out != "kept\nbar\n" {
		t.Fatalf("adopted sandbox: %q, %v", out, err)
	}
	if p := adopted.(*process.Sandbox).Pgid(); p == 0 || p == old.Pgid() {
		t.Fatalf("adopted sandbox's group %d (old %d)", p, old.Pgid())
	}
	if err := adopted.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old.Root()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("root after Destroy: %v", err)
	}
	for _, bad := range []string{"", "a/b", schema.NewSandboxID()} {
		if _, err := restarted.Adopt(t.Context(), runtime.Spec{ID: bad}); err == nil {
			t.Errorf("Adopt(%q) succeeded", bad)
		}
	}
}

func mustOutput(t *testing.T, sb runtime.Sandbox, script string) (string, error) {
	t.Helper()
	cmd, err := sb.Command(t.Context(), []string{"sh", "-c", script}, "", nil)
	if err != nil {
		return "", err
	}
	out, err := cmd.Output()
	return string(out), err
}
