package bhyve

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
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
	Home    string // host directory shared with the guest as 9p share "home" (mounted at /home/user)
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
// host-only bridge as a private member (the bridge forwards nothing between private members: a VM reaches
// the host, never another VM or its agent) and brings it up.
func tapSetupCmds(tap, bridge, vmName string) [][]string {
	return [][]string{
		{"ifconfig", tap, "description", vmName},
		{"ifconfig", bridge, "addm", tap},
		{"ifconfig", bridge, "private", tap},
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
// log file (a com port's backend is stdio, a tty or tcp, not a plain file). The sandbox user's home is a
// host directory shared over virtio-9p as "home" (bhyve(8): -s slot,virtio-9p,sharename=/path), which
// the image's fstab mounts at /home/user (p9fs).
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
		"-s", "5,virtio-9p," + homeShare + "=" + p.Home,
		"-l", "com1,stdio",
		"-l", "bootrom," + p.BootROM,
		p.Name,
	}
}

// homeShare is the 9p share name of the sandbox user's home (the image's fstab names it).
const homeShare = "home"

// macFor derives a stable locally administered MAC address from the VM's name; the guest's IPv6
// link-local address follows from it (linkLocal), so the worker knows where its agent is without DHCP.
func macFor(name string) string {
	return macAddr(name).String()
}

func macAddr(name string) net.HardwareAddr {
	h := sha256.Sum256([]byte(name))
	return net.HardwareAddr{0x02, 0xfb, h[0], h[1], h[2], h[3]}
}

// linkLocal is the IPv6 link-local address an interface with the 48-bit MAC mac configures for itself
// with a modified EUI-64 interface identifier (RFC 4291 appendix A: flip the universal/local bit of the
// first octet, insert ff:fe in the middle), as FreeBSD does with auto_linklocal. zone names the link
// it is reached on (the host's bridge).
func linkLocal(mac net.HardwareAddr, zone string) (netip.Addr, error) {
	if len(mac) != 6 {
		return netip.Addr{}, fmt.Errorf("link-local address: MAC %s is not 48 bits", mac)
	}
	a := [16]byte{0: 0xfe, 1: 0x80}
	copy(a[8:], []byte{mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]})
	return netip.AddrFrom16(a).WithZone(zone), nil
}

// agentAddr is the guest agent's address: the VM's link-local address on the bridge, at port.
func agentAddr(vmName, bridge string, port int) string {
	ll, _ := linkLocal(macAddr(vmName), bridge) // a macAddr is always 48 bits
	return netip.AddrPortFrom(ll, uint16(port)).String()
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
