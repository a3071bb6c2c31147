package main

import (
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/worker/internal/runtime/bhyve"
	"fleetbox.dev/worker/internal/runtime/jail"
)

func parseRuntimeFlags(t *testing.T, args ...string) *runtimeFlags {
	t.Helper()
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f runtimeFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &f
}

func TestRuntimeFlags(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name    string
		args    []string
		runtime string // Name() of the built runtime; "" means an error containing wantErr
		wantErr string
		python  string
	}{
		{name: "process by default", runtime: "process", python: hostPython()},
		{name: "jail with zfs", args: []string{"-runtime", "jail", "-jail-sandbox-dataset", "z/sbx", "-jail-template-dataset", "z/tmpl"}, runtime: "jail", python: jailPython},
		{name: "jail with a template directory", args: []string{"-runtime", "jail", "-jail-template-dir", "/usr/local/fleetbox/tmpl"}, runtime: "jail", python: jailPython},
		{name: "jail without templates", args: []string{"-runtime", "jail"}, wantErr: "no template", python: jailPython},
		{name: "jail relative template dir", args: []string{"-runtime", "jail", "-jail-template-dir", "tmpl"}, wantErr: "not absolute", python: jailPython},
		{name: "jail bad subnet", args: []string{"-runtime", "jail", "-jail-template-dir", "/t", "-jail-subnet", "10.0.0.0"}, wantErr: "-jail-subnet", python: jailPython},
		{name: "jail bad egress", args: []string{"-runtime", "jail", "-jail-template-dir", "/t", "-jail-egress-allow", "10.0.0.0/8,nope"}, wantErr: "-jail-egress-allow", python: jailPython},
		{name: "bhyve", args: []string{"-runtime", "bhyve", "-bhyve-vm-dataset", "z/vm", "-bhyve-image-dataset", "z/img"}, runtime: "bhyve", python: jailPython},
		{name: "bhyve without datasets", args: []string{"-runtime", "bhyve"}, wantErr: "VMDataset and ImageDataset are required", python: jailPython},
		{name: "bhyve bad prefix", args: []string{"-runtime", "bhyve", "-bhyve-vm-dataset", "z/vm", "-bhyve-image-dataset", "z/img", "-bhyve-prefix", "A_B"}, wantErr: "invalid prefix", python: jailPython},
		{name: "unknown", args: []string{"-runtime", "vm"}, wantErr: "unknown runtime", python: hostPython()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := parseRuntimeFlags(t, tt.args...)
			if got := f.defaultPython(); got != tt.python {
				t.Errorf("default python %q, want %q", got, tt.python)
			}
			rt, err := f.newRuntime(t.TempDir(), log)
			if tt.runtime == "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rt.Name() != tt.runtime {
				t.Fatalf("runtime %s, want %s", rt.Name(), tt.runtime)
			}
		})
	}
}

func TestJailConfigFromFlags(t *testing.T) {
	t.Parallel()
	f := parseRuntimeFlags(t, "-runtime", "jail", "-jail-sandbox-dataset", "z/sbx", "-jail-template-dataset", "z/tmpl",
		"-jail-snapshot-dataset", "z/snaps", "-jail-prefix", "w2", "-jail-subnet", "10.80.0.0/16", "-jail-vnet-bridge", "bridge2",
		"-jail-egress-allow", "0.0.0.0/0, 192.168.1.0/24", "-jail-maxproc", "-1")
	cfg, err := f.jailConfig("/var/db/fleetbox/worker", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want := jail.Config{
		DataDir: "/var/db/fleetbox/worker", SandboxDataset: "z/sbx", TemplateDataset: "z/tmpl", TemplateSnapshot: "base", SnapshotDataset: "z/snaps",
		Prefix: "w2", Interface: "lo1", Subnet: netip.MustParsePrefix("10.80.0.0/16"), VNETBridge: "bridge2",
		EgressAllow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("192.168.1.0/24")},
		MaxProc:     -1, OpenFiles: 8192,
	}
	cfg.Logger = nil
	if cfg.DataDir != want.DataDir || cfg.SandboxDataset != want.SandboxDataset || cfg.TemplateDataset != want.TemplateDataset ||
		cfg.TemplateSnapshot != want.TemplateSnapshot || cfg.SnapshotDataset != want.SnapshotDataset || cfg.Prefix != want.Prefix || cfg.Interface != want.Interface ||
		cfg.Subnet != want.Subnet || cfg.VNETBridge != want.VNETBridge || !slices.Equal(cfg.EgressAllow, want.EgressAllow) ||
		cfg.MaxProc != want.MaxProc || cfg.OpenFiles != want.OpenFiles {
		t.Fatalf("config %+v\nwant   %+v", cfg, want)
	}
}

func TestBhyveConfigFromFlags(t *testing.T) {
	t.Parallel()
	f := parseRuntimeFlags(t, "-runtime", "bhyve", "-bhyve-vm-dataset", "z/vm", "-bhyve-image-dataset", "z/img", "-bhyve-image-snapshot", "v2",
		"-bhyve-bridge", "bridge7", "-bhyve-bootrom", "/fw.fd", "-bhyve-prefix", "w2", "-bhyve-boot-timeout", "90s", "-bhyve-agent-port", "5000")
	cfg := f.bhyveConfig("/var/db/fleetbox/worker", nil)
	want := bhyve.Config{
		DataDir: "/var/db/fleetbox/worker", VMDataset: "z/vm", ImageDataset: "z/img", ImageSnapshot: "v2", Bridge: "bridge7",
		BootROM: "/fw.fd", Prefix: "w2", BootTimeout: 90 * time.Second, AgentPort: 5000,
	}
	if cfg.DataDir != want.DataDir || cfg.VMDataset != want.VMDataset || cfg.ImageDataset != want.ImageDataset || cfg.ImageSnapshot != want.ImageSnapshot ||
		cfg.Bridge != want.Bridge || cfg.BootROM != want.BootROM || cfg.Prefix != want.Prefix || cfg.BootTimeout != want.BootTimeout ||
		cfg.AgentPort != want.AgentPort || cfg.AgentClient != "" || cfg.AgentAddress != nil {
		t.Fatalf("config %+v\nwant   %+v", cfg, want)
	}
	// The defaults are what prepare-host.sh and build-bhyve-image.sh make.
	d := parseRuntimeFlags(t, "-runtime", "bhyve").bhyveConfig("/d", nil)
	if d.Bridge != "bridge1" || d.Prefix != "fbvm" || d.ImageSnapshot != "base" || d.BootTimeout != time.Minute || d.AgentPort != 49982 {
		t.Fatalf("defaults %+v", d)
	}
}
