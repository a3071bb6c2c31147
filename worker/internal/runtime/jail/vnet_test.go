package jail

import (
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"fleetbox.dev/worker/internal/runtime/executor"
)

func newVNETRuntime(t *testing.T, rec *executor.Recorder) (*Runtime, string) {
	t.Helper()
	data := t.TempDir()
	r, err := New(Config{DataDir: data, SandboxDataset: sbxDS, TemplateDataset: tmplDS, VNETBridge: "bridge2", Exec: rec,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	return r, data
}

var (
	epairLines = []string{
		"ifconfig epair create",
		"ifconfig epair4a description sbx-abc/10.77.0.2",
		"ifconfig bridge2 addm epair4a",
		"ifconfig epair4a up",
	}
	vnetJailLine = "jail -i -c name=sbx-abc path={data}/sandboxes/abc host.hostname=abc persist mount.devfs " +
		"devfs_ruleset=5 enforce_statfs=2 securelevel=2 children.max=0 allow.raw_sockets=0 allow.mount=0 " +
		"allow.chflags=0 vnet vnet.interface=epair4b"
	jexecLines = []string{
		"jexec sbx-abc ifconfig epair4b inet 10.77.0.2/16 up",
		"jexec sbx-abc route add default 10.77.0.1",
	}
	vnetCreate   = slices.Concat([]string{cloneLine}, epairLines, []string{vnetJailLine}, jexecLines, rctlLines, []string{pfLoadLine})
	vnetTeardown = []string{killLine, jailRmLine, pfFlushLine, rctlRmLine, "ifconfig epair4a destroy", devfsLine, destroyLine}
	epairMade    = executor.Result{Stdout: "epair4a\n"}
)

func TestVNETCreateDestroy(t *testing.T) {
	rec := (&executor.Recorder{}).On("jail -i -c", jailStarted).On("ifconfig epair create", epairMade)
	r, data := newVNETRuntime(t, rec)
	sb, err := r.Create(t.Context(), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, expand(data, vnetCreate...))
	rec.Reset()
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, expand(data, vnetTeardown...))
}

func TestVNETCreateFailures(t *testing.T) {
	undoEpair := []string{"ifconfig epair4a destroy", devfsLine, destroyLine}
	tests := []struct {
		name string
		fail string
		out  *executor.Result
		want []string
	}{
		{"epair create fails: clone destroyed", "ifconfig epair create", nil,
			[]string{cloneLine, "ifconfig epair create", devfsLine, destroyLine}},
		{"epair name unparsable: clone destroyed", "", &executor.Result{Stdout: "bridge0\n"},
			[]string{cloneLine, "ifconfig epair create", devfsLine, destroyLine}},
		{"bridge fails: epair and clone destroyed", "ifconfig bridge2 addm", nil,
			slices.Concat([]string{cloneLine}, epairLines[:3], undoEpair)},
		{"jail start fails: epair and clone destroyed", "jail -i -c", nil,
			slices.Concat([]string{cloneLine}, epairLines, []string{vnetJailLine}, undoEpair)},
		{"network inside fails: jail removed, epair and clone destroyed", "jexec sbx-abc route", nil,
			slices.Concat([]string{cloneLine}, epairLines, []string{vnetJailLine}, jexecLines, []string{jailRmLine}, undoEpair)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := (&executor.Recorder{}).On("jail -i -c", jailStarted).On("ifconfig epair create", epairMade)
			if tt.fail != "" {
				rec.On(tt.fail, failedResult)
			}
			if tt.out != nil {
				rec.On("ifconfig epair create", *tt.out)
			}
			r, data := newVNETRuntime(t, rec)
			if _, err := r.Create(t.Context(), testSpec); err == nil {
				t.Fatal("Create succeeded")
			}
			checkLines(t, rec, expand(data, tt.want...))
		})
	}
}

func TestVNETCleanup(t *testing.T) {
	rec := &executor.Recorder{}
	r, data := newVNETRuntime(t, rec)
	rec.On("jls", executor.Result{Stdout: "jid name path ip4.addr\n3 sbx-keep " + data + "/sandboxes/keep -\n4 sbx-old /x -\n"}).
		On("ifconfig -g epair", executor.Result{Stdout: "epair0a: flags=1\n\tdescription: sbx-keep/10.77.0.2\nepair0b: flags=1\nepair1a: flags=1\nepair2a: flags=1\n"}).
		On("ifconfig epair0a", executor.Result{Stdout: "epair0a: flags=1\n\tdescription: sbx-keep/10.77.0.2\n"}).
		On("ifconfig epair1a", executor.Result{Stdout: "epair1a: flags=1\n\tdescription: sbx-old/10.77.0.3\n"}).
		On("ifconfig epair2a", executor.Result{Stdout: "epair2a: flags=1\n\tdescription: somebody else\n"})
	if err := r.Cleanup(t.Context(), func(id string) bool { return id == "keep" }); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, []string{
		"jls -h jid name path ip4.addr",
		"zfs list -H -o name -t filesystem -d 1 tank/fb/sbx",
		"ifconfig -g epair", "ifconfig epair0a", "ifconfig epair1a", "ifconfig epair2a",
		"rctl jail:", "pfctl -a sbx -s Anchors",
		"jail -r sbx-old", "ifconfig epair1a destroy",
		"zfs list -H -o name -t filesystem -d 1 tank/fb/snap",
	})
	if a, _ := r.allocAddr("new"); a != netip.MustParseAddr("10.77.0.3") {
		t.Errorf("new address %s: the kept VNET jail's 10.77.0.2 must stay reserved", a)
	}
}

func TestEpairParsers(t *testing.T) {
	for _, in := range []string{"", "epair3b", "tap0", "epair 3a"} {
		if _, _, err := parseEpair([]byte(in)); err == nil {
			t.Errorf("parseEpair(%q) accepted", in)
		}
	}
	if a, b, err := parseEpair([]byte("epair12a\n")); err != nil || a != "epair12a" || b != "epair12b" {
		t.Errorf("parseEpair = %s %s %v", a, b, err)
	}
	for _, d := range []string{"", "sbx-a", "sbx-a/notip"} {
		if _, _, ok := parseEpairDesc(d); ok {
			t.Errorf("parseEpairDesc(%q) accepted", d)
		}
	}
	if !strings.HasPrefix(epairDesc("sbx-a", netip.MustParseAddr("10.0.0.2")), "sbx-a/") {
		t.Error("epairDesc")
	}
}
