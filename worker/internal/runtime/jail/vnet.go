package jail

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"fleetbox.dev/worker/internal/runtime/executor"
)

// VNET mode (Config.VNETBridge set): instead of an address on a shared loopback interface, each jail has
// its own network stack with one end of an epair in it; the host end is a member of the bridge, whose own
// address (the subnet's first) is the jails' default route.
//
//	ifconfig epair create                          → epairNa (host end), epairNb (jail end)
//	ifconfig epairNa description <jail>/<addr>     (Cleanup finds the pair, and a kept jail's address, by it)
//	ifconfig <bridge> addm epairNa; ifconfig epairNa up
//	jail -c ... vnet vnet.interface=epairNb
//	jexec <jail> ifconfig epairNb inet <addr>/<bits> up; jexec <jail> route add default <gateway>
//
// Destroy removes the jail first (epairNb returns to the host) and then destroys the pair.

func epairCreateCmd() []string { return []string{"ifconfig", "epair", "create"} }

func epairSetupCmds(hostEnd, bridge, desc string) [][]string {
	return [][]string{
		{"ifconfig", hostEnd, "description", desc},
		{"ifconfig", bridge, "addm", hostEnd},
		{"ifconfig", hostEnd, "up"},
	}
}

func epairDestroyCmd(hostEnd string) []string { return []string{"ifconfig", hostEnd, "destroy"} }

func epairListCmd() []string            { return []string{"ifconfig", "-g", "epair"} }
func ifaceShowCmd(name string) []string { return []string{"ifconfig", name} }

// vnetConfigCmds configure the jail's end of the pair from inside the jail (jexec runs them there).
func vnetConfigCmds(jailName, jailEnd string, addr netip.Addr, bits int, gateway netip.Addr) [][]string {
	return [][]string{
		{"jexec", jailName, "ifconfig", jailEnd, "inet", fmt.Sprintf("%s/%d", addr, bits), "up"},
		{"jexec", jailName, "route", "add", "default", gateway.String()},
	}
}

// parseEpair returns the host end ifconfig printed for `ifconfig epair create` and the jail end.
func parseEpair(out []byte) (hostEnd, jailEnd string, err error) {
	a := strings.TrimSpace(string(out))
	base, ok := strings.CutSuffix(a, "a")
	if !ok || !strings.HasPrefix(base, "epair") || strings.ContainsAny(a, " \t\n/") {
		return "", "", fmt.Errorf("parse epair name %q", a)
	}
	return a, base + "b", nil
}

// epairDesc is the description of a jail's host end: <jail>/<addr>.
func epairDesc(jailName string, addr netip.Addr) string { return jailName + "/" + addr.String() }

func parseEpairDesc(desc string) (jailName string, addr netip.Addr, ok bool) {
	name, a, ok := strings.Cut(desc, "/")
	if !ok {
		return "", netip.Addr{}, false
	}
	ad, err := netip.ParseAddr(a)
	if err != nil {
		return "", netip.Addr{}, false
	}
	return name, ad, true
}

// parseIfaceNames returns the interface names in ifconfig output (lines "name: flags=...").
func parseIfaceNames(out []byte) []string {
	var res []string
	for line := range strings.Lines(string(out)) {
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

// epairs lists the host ends of this runtime's epairs: jail name → host end and address.
func (r *Runtime) epairs(ctx context.Context) (map[string]epairEntry, error) {
	out, err := r.run(ctx, epairListCmd(), nil)
	if err != nil && !gone(err) && executor.ExitCode(err) != 1 { // no epair at all: ifconfig -g finds nothing
		return nil, fmt.Errorf("list epairs: %w", err)
	}
	res := map[string]epairEntry{}
	for _, name := range parseIfaceNames(out) {
		if !strings.HasSuffix(name, "a") {
			continue
		}
		show, err := r.run(ctx, ifaceShowCmd(name), nil)
		if err != nil {
			continue // destroyed meanwhile
		}
		if jailName, addr, ok := parseEpairDesc(parseDescription(show)); ok {
			res[jailName] = epairEntry{HostEnd: name, Addr: addr}
		}
	}
	return res, nil
}

type epairEntry struct {
	HostEnd string
	Addr    netip.Addr
}
