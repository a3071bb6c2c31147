//go:build freebsd

package jail

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
)

// TestHost drives the jail runtime with real commands on a FreeBSD host prepared by deploy/freebsd. It
// needs root and FLEETBOX_TEST_JAIL_DATASET (e.g. zroot/fleetbox/sbx) and FLEETBOX_TEST_TEMPLATE_DATASET
// (e.g. zroot/fleetbox/tmpl, with <template>@base for template "base"); it skips, saying why, otherwise.
// Its snapshot goes to the default SnapshotDataset (<parent of the jail dataset>/snap) and is deleted
// again. It has never been run: it was written and compiled (GOOS=freebsd go vet) on Linux. The full
// conformance suite is TestJailConformance (conformance_test.go).
func TestHost(t *testing.T) {
	sbx, tmpl := os.Getenv("FLEETBOX_TEST_JAIL_DATASET"), os.Getenv("FLEETBOX_TEST_TEMPLATE_DATASET")
	if os.Geteuid() != 0 || sbx == "" || tmpl == "" {
		t.Skip("needs root, FLEETBOX_TEST_JAIL_DATASET and FLEETBOX_TEST_TEMPLATE_DATASET")
	}
	r, err := New(Config{DataDir: t.TempDir(), SandboxDataset: sbx, TemplateDataset: tmpl, Prefix: "fbtest",
		Exec: executor.Real{}, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Cleanup(t.Context(), nil); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	sb, err := r.Create(t.Context(), runtime.Spec{ID: "hosttest", MemoryMB: 256, CPUCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	js := sb.(*Sandbox)
	t.Cleanup(func() { _ = sb.Destroy(t.Context()) })

	cmd, err := sb.Command(t.Context(), []string{"sh", "-c", "hostname; id -un; pwd"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("run in jail: %v: %s", err, out.String())
	}
	if got := strings.Fields(out.String()); len(got) != 3 || got[0] != "hosttest" || got[1] != "user" || got[2] != "/home/user" {
		t.Errorf("in jail: %q", out.String())
	}
	if err := js.Pause(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := js.Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	snap := schema.NewSandboxID()
	if err := js.Snapshot(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteSnapshot(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	if u, err := js.Usage(t.Context()); err != nil || u.Processes < 0 {
		t.Errorf("Usage = %+v, %v", u, err)
	}
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	left, err := r.inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if f := left["hosttest"]; f != nil {
		t.Errorf("left after Destroy: %+v", f.present)
	}
}
