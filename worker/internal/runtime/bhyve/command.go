package bhyve

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// This file builds the argv of every system command the runtime runs and parses their output. It is pure
// (no syscalls, no os/exec) so that its tests run on any OS.

// vmParams are the parameters of one bhyve command line.
type vmParams struct {
	Name    string // vmm instance name: <prefix>-<id>
	CPUs    int
	MemMB   int
	Disk    string // /dev/zvol/<dataset>
	Tap     string
	MAC     string
	BootROM string // UEFI firmware
}

func zvolCloneCmd(snapshot, dataset string) []string {
	return []string{"zfs", "clone", "-o", "volmode=dev", snapshot, dataset}
}

func zfsDestroyCmd(dataset string) []string { return []string{"zfs", "destroy", "-r", dataset} }

// zfsListCmd lists the volumes directly below parent, names only.
func zfsListCmd(parent string) []string {
	return []string{"zfs", "list", "-H", "-o", "name", "-t", "volume", "-d", "1", parent}
}

// tapCreateCmd creates a tap interface; ifconfig prints its name.
func tapCreateCmd() []string { return []string{"ifconfig", "tap", "create"} }

// tapSetupCmds names the tap after its VM (Cleanup finds it by that description), adds it to the
// host-only bridge and brings it up.
func tapSetupCmds(tap, bridge, vmName string) [][]string {
	return [][]string{
		{"ifconfig", tap, "description", vmName},
		{"ifconfig", bridge, "addm", tap},
		{"ifconfig", tap, "up"},
	}
}

func tapDestroyCmd(tap string) []string { return []string{"ifconfig", tap, "destroy"} }

// tapListCmd lists every tap interface with its description.
func tapListCmd() []string { return []string{"ifconfig", "-g", "tap"} }

func tapShowCmd(tap string) []string { return []string{"ifconfig", tap} }

func bhyvectlDestroyCmd(vmName string) []string {
	return []string{"bhyvectl", "--vm=" + vmName, "--destroy"}
}

// bhyveCmd is the command line of one VM: -H yields the CPU on HLT, -P exits on PAUSE, -D destroys the vmm
// instance when the guest powers off. The serial console is stdio, which the launcher sends to the VM's
// log file (a com port's backend is stdio, a tty or tcp, not a plain file).
func bhyveCmd(p vmParams) []string {
	return []string{"bhyve",
		"-c", strconv.Itoa(p.CPUs),
		"-m", strconv.Itoa(p.MemMB) + "M",
		"-H", "-P", "-D",
		"-s", "0,hostbridge",
		"-s", "1,lpc",
		"-s", "2,virtio-blk," + p.Disk,
		"-s", "3,virtio-net," + p.Tap + ",mac=" + p.MAC,
		"-s", "4,virtio-rnd",
		"-l", "com1,stdio",
		"-l", "bootrom," + p.BootROM,
		p.Name,
	}
}

// macFor derives a stable locally administered MAC address from the VM's name, so a DHCP server on the
// bridge can give the VM a fixed address.
func macFor(name string) string {
	h := sha256.Sum256([]byte(name))
	return net.HardwareAddr{0x02, 0xfb, h[0], h[1], h[2], h[3]}.String()
}

// parseTap returns the interface name ifconfig printed for `ifconfig tap create`.
func parseTap(out []byte) (string, error) {
	name := strings.TrimSpace(string(out))
	if !strings.HasPrefix(name, "tap") || strings.ContainsAny(name, " \t\n/") {
		return "", fmt.Errorf("parse tap name %q", name)
	}
	return name, nil
}

// parseIfaceNames returns the interface names in ifconfig output (lines "name: flags=...").
func parseIfaceNames(out []byte) []string {
	var res []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if name, _, ok := strings.Cut(line, ":"); ok {
			res = append(res, name)
		}
	}
	return res
}

// parseDescription returns the description in ifconfig output for one interface.
func parseDescription(out []byte) string {
	for line := range strings.Lines(string(out)) {
		if d, ok := strings.CutPrefix(strings.TrimSpace(line), "description: "); ok {
			return strings.TrimSpace(d)
		}
	}
	return ""
}

// parseChildren returns the last path element of each line of out that is a direct child of parent.
func parseChildren(out []byte, parent string) []string {
	var res []string
	for line := range strings.Lines(string(out)) {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), parent+"/")
		if ok && name != "" && !strings.Contains(name, "/") {
			res = append(res, name)
		}
	}
	slices.Sort(res)
	return slices.Compact(res)
}
