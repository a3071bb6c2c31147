package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"fleetbox.dev/worker/internal/agent"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/bhyve"
	"fleetbox.dev/worker/internal/runtime/jail"
	"fleetbox.dev/worker/internal/runtime/process"
)

// runtimeFlags are the settings of every runtime; only the chosen runtime's are used.
type runtimeFlags struct {
	name string

	jailSandboxDataset  string
	jailTemplateDataset string
	jailTemplateSnap    string
	jailSnapshotDataset string
	jailTemplateDir     string
	jailPrefix          string
	jailInterface       string
	jailSubnet          string
	jailVNETBridge      string
	jailEgressAllow     string
	jailMaxProc         int
	jailOpenFiles       int

	bhyveVMDataset    string
	bhyveImageDataset string
	bhyveImageSnap    string
	bhyveBridge       string
	bhyveBootROM      string
	bhyvePrefix       string
	bhyveBootTimeout  time.Duration
	bhyveAgentPort    int
}

// jailPython is where the interpreter is in a jail template built by deploy/freebsd/build-jail-template.sh
// (FreeBSD's python3 package).
const jailPython = "/usr/local/bin/python3"

func (f *runtimeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.name, "runtime", process.Name, "sandbox runtime: process (any unix, no isolation), jail or bhyve (FreeBSD)")
	fs.StringVar(&f.jailSandboxDataset, "jail-sandbox-dataset", "", "jail: ZFS file system the sandboxes' clones are made under (e.g. zroot/fleetbox/sbx); empty: copy -jail-template-dir instead")
	fs.StringVar(&f.jailTemplateDataset, "jail-template-dataset", "", "jail: ZFS file system holding one file system per template (e.g. zroot/fleetbox/tmpl)")
	fs.StringVar(&f.jailTemplateSnap, "jail-template-snapshot", "base", "jail: snapshot of each template file system that sandboxes are cloned from")
	fs.StringVar(&f.jailSnapshotDataset, "jail-snapshot-dataset", "", "jail: ZFS file system that sandbox snapshots are received into (default: beside -jail-sandbox-dataset, named snap)")
	fs.StringVar(&f.jailTemplateDir, "jail-template-dir", "", "jail: directory with one template directory each, copied per sandbox on hosts without ZFS")
	fs.StringVar(&f.jailPrefix, "jail-prefix", "sbx", "jail: prefix of this worker's jail names and pf anchors (pf.conf must evaluate anchor \"<prefix>/*\")")
	fs.StringVar(&f.jailInterface, "jail-interface", "lo1", "jail: interface carrying the jails' addresses")
	fs.StringVar(&f.jailSubnet, "jail-subnet", "10.77.0.0/16", "jail: IPv4 subnet the jails' addresses come from")
	fs.StringVar(&f.jailVNETBridge, "jail-vnet-bridge", "", "jail: give each jail its own network stack on an epair joined to this bridge (which holds the subnet's first address)")
	fs.StringVar(&f.jailEgressAllow, "jail-egress-allow", "0.0.0.0/0", "jail: comma-separated CIDRs that sandboxes whose create names no network policy may reach (default: everything, as in E2B; empty: nothing)")
	fs.IntVar(&f.jailMaxProc, "jail-maxproc", 512, "jail: rctl limit on processes per sandbox (<0: none)")
	fs.IntVar(&f.jailOpenFiles, "jail-openfiles", 8192, "jail: rctl limit on open files per sandbox (<0: none)")
	fs.StringVar(&f.bhyveVMDataset, "bhyve-vm-dataset", "", "bhyve: ZFS file system the VMs' disks (zvol clones) are made under (e.g. zroot/fleetbox/vm)")
	fs.StringVar(&f.bhyveImageDataset, "bhyve-image-dataset", "", "bhyve: ZFS file system holding one image volume per template (e.g. zroot/fleetbox/img, build-bhyve-image.sh)")
	fs.StringVar(&f.bhyveImageSnap, "bhyve-image-snapshot", "base", "bhyve: snapshot of each image volume that VM disks are cloned from")
	fs.StringVar(&f.bhyveBridge, "bhyve-bridge", "bridge1", "bhyve: host-only bridge the VMs' taps join; the worker reaches each guest agent at its IPv6 link-local address on it")
	fs.StringVar(&f.bhyveBootROM, "bhyve-bootrom", "/usr/local/share/uefi-firmware/BHYVE_UEFI.fd", "bhyve: UEFI firmware (edk2-bhyve package)")
	fs.StringVar(&f.bhyvePrefix, "bhyve-prefix", "fbvm", "bhyve: prefix of this worker's VM and tap names (<prefix>-<id>)")
	fs.DurationVar(&f.bhyveBootTimeout, "bhyve-boot-timeout", time.Minute, "bhyve: how long a create waits for the guest agent to answer before it destroys the VM")
	fs.IntVar(&f.bhyveAgentPort, "bhyve-agent-port", agent.DefaultPort, "bhyve: TCP port of the guest agent (sbx-agent serve -listen)")
}

// defaultPython is the interpreter of code contexts when -python is not given: the host's for the process
// runtime, the template's for runtimes whose sandboxes have their own root.
func (f *runtimeFlags) defaultPython() string {
	if f.name == jail.Name || f.name == bhyve.Name {
		return jailPython
	}
	return hostPython()
}

// newRuntime builds the runtime -runtime names.
func (f *runtimeFlags) newRuntime(dataDir string, log *slog.Logger) (runtime.Runtime, error) {
	switch f.name {
	case process.Name:
		return process.New(process.Config{DataDir: dataDir, Logger: log})
	case jail.Name:
		cfg, err := f.jailConfig(dataDir, log)
		if err != nil {
			return nil, err
		}
		return jail.New(cfg)
	case bhyve.Name:
		// The VMs' processes run through this executable's agent-exec subcommand (main dispatches it).
		return bhyve.New(f.bhyveConfig(dataDir, log))
	}
	return nil, fmt.Errorf("unknown runtime %q (available: %s, %s, %s)", f.name, process.Name, jail.Name, bhyve.Name)
}

func (f *runtimeFlags) bhyveConfig(dataDir string, log *slog.Logger) bhyve.Config {
	return bhyve.Config{
		DataDir:       dataDir,
		VMDataset:     f.bhyveVMDataset,
		ImageDataset:  f.bhyveImageDataset,
		ImageSnapshot: f.bhyveImageSnap,
		Bridge:        f.bhyveBridge,
		BootROM:       f.bhyveBootROM,
		Prefix:        f.bhyvePrefix,
		BootTimeout:   f.bhyveBootTimeout,
		AgentPort:     f.bhyveAgentPort,
		Logger:        log,
	}
}

func (f *runtimeFlags) jailConfig(dataDir string, log *slog.Logger) (jail.Config, error) {
	cfg := jail.Config{
		DataDir:          dataDir,
		SandboxDataset:   f.jailSandboxDataset,
		TemplateDataset:  f.jailTemplateDataset,
		TemplateSnapshot: f.jailTemplateSnap,
		SnapshotDataset:  f.jailSnapshotDataset,
		TemplateDir:      f.jailTemplateDir,
		Prefix:           f.jailPrefix,
		Interface:        f.jailInterface,
		VNETBridge:       f.jailVNETBridge,
		MaxProc:          f.jailMaxProc,
		OpenFiles:        f.jailOpenFiles,
		Logger:           log,
	}
	if cfg.TemplateDir != "" && !filepath.IsAbs(cfg.TemplateDir) {
		return cfg, fmt.Errorf("-jail-template-dir %q is not absolute", cfg.TemplateDir)
	}
	subnet, err := netip.ParsePrefix(f.jailSubnet)
	if err != nil {
		return cfg, fmt.Errorf("-jail-subnet: %w", err)
	}
	cfg.Subnet = subnet
	for s := range strings.SplitSeq(f.jailEgressAllow, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return cfg, fmt.Errorf("-jail-egress-allow: %w", err)
		}
		cfg.EgressAllow = append(cfg.EgressAllow, p)
	}
	return cfg, nil
}
