package jail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
)

func TestCleanupZFS(t *testing.T) {
	rec := &executor.Recorder{}
	r, data := newTestRuntime(t, rec, true)
	rec.On("jls", executor.Result{Stdout: "jid name path ip4.addr\n" +
		"3 sbx-keep " + data + "/sandboxes/keep 10.77.0.2\n" +
		"4 sbx-old " + data + "/sandboxes/old 10.77.0.3\n" +
		"5 other-jail /jails/other 192.168.1.5\n" +
		"6 sbx-Bad.x /x -\n"}).
		On("zfs list", executor.Result{Stdout: "tank/fb/sbx\ntank/fb/sbx/keep\ntank/fb/sbx/old\ntank/fb/sbx/orphan\n"}).
		On("rctl", executor.Result{Stdout: "jail:sbx-keep:maxproc:deny=512\njail:sbx-old:maxproc:deny=512\n" +
			"jail:sbx-old:memoryuse:deny=536870912\njail:sbx-rules:pcpu:deny=100\njail:www:maxproc:deny=9\n"}).
		On("pfctl -a sbx -s Anchors", executor.Result{Stdout: "  sbx/keep\n  sbx/old\n  sbx/anchor\n"})
	if err := r.Cleanup(t.Context(), func(id string) bool { return id == "keep" }); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, expand(data,
		"jls -h jid name path ip4.addr",
		"zfs list -H -o name -t filesystem -d 1 tank/fb/sbx",
		"rctl jail:",
		"pfctl -a sbx -s Anchors",
		// sorted by id: anchor, old, orphan, rules
		"pfctl -a sbx/anchor -F all",
		"jail -r sbx-old", "pfctl -a sbx/old -F all", "rctl -r jail:sbx-old", "mount -p -t devfs", "zfs destroy -r tank/fb/sbx/old",
		"mount -p -t devfs", "zfs destroy -r tank/fb/sbx/orphan",
		"rctl -r jail:sbx-rules",
		"zfs list -H -o name -t filesystem -d 1 tank/fb/snap", // deleted snapshots waiting for their clones
	))
	// The kept jail's address is not given to a new sandbox.
	if a, _ := r.allocAddr("new"); a.String() != "10.77.0.3" {
		t.Errorf("new address %s, want 10.77.0.3 (10.77.0.2 is kept)", a)
	}
}

func TestCleanupCopiesAndErrors(t *testing.T) {
	rec := &executor.Recorder{}
	r, data := newTestRuntime(t, rec, false)
	for _, d := range []string{"old", "keep", "Not-An-Id"} {
		if err := os.MkdirAll(filepath.Join(data, "sandboxes", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rec.Fail("rm -rf", "Operation not permitted")
	err := r.Cleanup(t.Context(), func(id string) bool { return id == "keep" })
	if err == nil || !strings.Contains(err.Error(), "cleanup old") {
		t.Fatalf("Cleanup: %v, want the rm failure of old", err)
	}
	checkLines(t, rec, expand(data,
		"jls -h jid name path ip4.addr", "rctl jail:", "pfctl -a sbx -s Anchors",
		"mount -p -t devfs", "chflags -R 0 {data}/sandboxes/old", "rm -rf {data}/sandboxes/old",
	))

	for _, fail := range []string{"jls", "rctl", "pfctl"} {
		rec := (&executor.Recorder{}).Fail(fail, "down")
		r, _ := newTestRuntime(t, rec, true)
		if err := r.Cleanup(t.Context(), nil); err == nil {
			t.Errorf("%s failing: Cleanup succeeded", fail)
		}
		for _, l := range rec.Lines() {
			if strings.Contains(l, "destroy") || strings.Contains(l, " -r ") {
				t.Errorf("%s failing: Cleanup removed something: %s", fail, l)
			}
		}
	}
}

func TestCommandNeedsFreeBSD(t *testing.T) {
	sb, _, data := created(t, true)
	bin := filepath.Join(data, "sandboxes", "abc", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd, err := sb.Command(t.Context(), []string{"sh", "-c", "true"}, "", map[string]string{"A": "b"})
	if isFreeBSD {
		if err != nil {
			t.Fatal(err)
		}
		if cmd.Path != "/bin/sh" || cmd.Dir != runtime.SandboxHome || jailOf(cmd) != 7 {
			t.Errorf("cmd path %q dir %q jail %d", cmd.Path, cmd.Dir, jailOf(cmd))
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "needs FreeBSD") {
		t.Errorf("Command on %s: %v, want a needs-FreeBSD error", "this OS", err)
	}
	if _, err := sb.Command(t.Context(), []string{"nothere"}, "", nil); err == nil {
		t.Error("missing program found")
	}
}
