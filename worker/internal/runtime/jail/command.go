package jail

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"fleetbox.dev/worker/internal/runtime"
)

// This file builds the argv of every system command the runtime runs and parses their output. It is pure
// (no syscalls, no os/exec) so that its tests run on any OS.

// names are the host-side names of one sandbox's objects.
type names struct {
	ID      string
	Jail    string // jail name: <prefix>-<id>
	Root    string // jail path: the clone's mountpoint or the copied directory
	Dataset string // <SandboxDataset>/<id>; "" without ZFS
	Anchor  string // pf anchor: <prefix>/<id>
}

// limits are the rctl limits of one jail; zero means "no rule".
type limits struct {
	MemoryMB  int
	MaxProc   int
	OpenFiles int
	PCPU      int // percent of one core
}

// jailParams are the parameters of `jail -c`.
type jailParams struct {
	Name, Path, Hostname string
	Interface            string     // loopback interface carrying the jail's address (lo1)
	Addr                 netip.Addr // the jail's IPv4 address; invalid: ip4=disable
	VNETInterface        string     // VNET mode: the jail's end of its epair (no ip4.addr then)
	DevfsRuleset         int
	Securelevel          int
}

func zfsCloneCmd(snapshot, dataset, mountpoint string) []string {
	return []string{"zfs", "clone", "-o", "mountpoint=" + mountpoint, snapshot, dataset}
}

func zfsDestroyCmd(dataset string) []string { return []string{"zfs", "destroy", "-r", dataset} }

func zfsSnapshotCmd(dataset, snap string) []string {
	return []string{"zfs", "snapshot", dataset + "@" + snap}
}

// zfsDestroySnapshotCmd destroys one snapshot (dataset@snap), nothing else.
func zfsDestroySnapshotCmd(dataset, snap string) []string {
	return []string{"zfs", "destroy", dataset + "@" + snap}
}

// zfsSendCmd writes a full stream of snapshot (dataset@snap) to its standard output.
func zfsSendCmd(snapshot string) []string { return []string{"zfs", "send", snapshot} }

// zfsRecvCmd creates file system dataset, with snapshot dataset@snap, from a full stream on its standard
// input. It stays unmounted, now (-u) and later (canmount=off): it is only ever cloned.
func zfsRecvCmd(dataset, snap string) []string {
	return []string{"zfs", "recv", "-u", "-o", "canmount=off", dataset + "@" + snap}
}

func zfsRenameCmd(from, to string) []string { return []string{"zfs", "rename", from, to} }

// zfsListCmd lists the file systems directly below parent (and parent itself), names only.
func zfsListCmd(parent string) []string {
	return []string{"zfs", "list", "-H", "-o", "name", "-t", "filesystem", "-d", "1", parent}
}

// copyCmd copies a template directory to a new sandbox root (hosts without ZFS). dst must not exist.
func copyCmd(src, dst string) []string { return []string{"cp", "-a", src, dst} }

// copyIntoCmd copies each of srcs (with everything below it) into the existing directory dir.
func copyIntoCmd(srcs []string, dir string) []string {
	return append(append([]string{"cp", "-a"}, srcs...), dir)
}

// removeTreeCmds removes a copied sandbox root: clear file flags (schg and friends) first, then remove.
func removeTreeCmds(root string) [][]string {
	return [][]string{{"chflags", "-R", "0", root}, {"rm", "-rf", root}}
}

func jailCreateCmd(p jailParams) []string {
	argv := []string{"jail", "-i", "-c",
		"name=" + p.Name,
		"path=" + p.Path,
		"host.hostname=" + p.Hostname,
		"persist",
		"mount.devfs",
		"devfs_ruleset=" + strconv.Itoa(p.DevfsRuleset),
		"enforce_statfs=2",
		"securelevel=" + strconv.Itoa(p.Securelevel),
		"children.max=0",
		"allow.raw_sockets=0",
		"allow.mount=0",
		"allow.chflags=0",
	}
	if p.VNETInterface != "" {
		argv = append(argv, "vnet", "vnet.interface="+p.VNETInterface)
	} else if p.Addr.IsValid() {
		argv = append(argv, fmt.Sprintf("ip4.addr=%s|%s/32", p.Interface, p.Addr), "ip6=disable")
	} else {
		argv = append(argv, "ip4=disable", "ip6=disable")
	}
	return argv
}

func jailRemoveCmd(name string) []string { return []string{"jail", "-r", name} }

// jlsCmd lists every jail as a header line and one "jid name path ip4.addr" line each.
func jlsCmd() []string { return []string{"jls", "-h", "jid", "name", "path", "ip4.addr"} }

func rctlSubject(jailName string) string { return "jail:" + jailName }

// rctlAddCmds adds one rule per non-zero limit, in a fixed order. Memory is the resident set size
// (memoryuse) with action sigkill: RSS is not a deniable resource, so a deny rule only makes the page
// daemon push the jail's pages out (to swap, if any) and no allocation ever fails; sigkill kills the
// process whose growth takes the jail over the limit (the page daemon checks about once a second), as
// Linux's OOM killer would in a VM. The other limits deny: fork, open and the scheduler enforce them.
func rctlAddCmds(jailName string, l limits) [][]string {
	var out [][]string
	add := func(resource, action, amount string) {
		out = append(out, []string{"rctl", "-a", rctlSubject(jailName) + ":" + resource + ":" + action + "=" + amount})
	}
	if l.MemoryMB > 0 {
		add("memoryuse", "sigkill", strconv.Itoa(l.MemoryMB)+"m")
	}
	if l.MaxProc > 0 {
		add("maxproc", "deny", strconv.Itoa(l.MaxProc))
	}
	if l.OpenFiles > 0 {
		add("openfiles", "deny", strconv.Itoa(l.OpenFiles))
	}
	if l.PCPU > 0 {
		add("pcpu", "deny", strconv.Itoa(l.PCPU))
	}
	return out
}

func rctlRemoveCmd(jailName string) []string { return []string{"rctl", "-r", rctlSubject(jailName)} }

// rctlListCmd lists the rules of every jail; rctlUsageCmd the resource usage of one.
func rctlListCmd() []string                 { return []string{"rctl", "jail:"} }
func rctlUsageCmd(jailName string) []string { return []string{"rctl", "-u", rctlSubject(jailName)} }

func pfLoadCmd(anchor string) []string  { return []string{"pfctl", "-a", anchor, "-f", "-"} }
func pfFlushCmd(anchor string) []string { return []string{"pfctl", "-a", anchor, "-F", "all"} }
func pfAnchorsCmd(parent string) []string {
	return []string{"pfctl", "-a", parent, "-s", "Anchors"}
}

// pfRules is the egress ruleset of one sandbox's anchor: traffic from the jail's address may reach the
// jail itself and the allow list; the deny list is dropped; everything else passes with AllowAll and is
// dropped without it. The rules only match the jail's address, so they never touch other traffic. Jails on
// a loopback alias have no IPv6 (ip6=disable); a VNET jail's IPv6, and a VNET jail whose root changes its
// address, are not filtered yet (README, known limitations). The host's pf.conf must evaluate
// `anchor "<prefix>/*"` for it to take effect.
func pfRules(id string, addr netip.Addr, e runtime.Egress) []byte {
	var b bytes.Buffer
	what := "deny all egress except the allow list"
	if e.AllowAll {
		what = "allow all egress except the deny list"
	}
	fmt.Fprintf(&b, "# fleetbox sandbox %s: %s\n", id, what)
	fmt.Fprintf(&b, "pass quick inet from %s to %s\n", addr, addr)
	if len(e.Allow) > 0 {
		fmt.Fprintf(&b, "table <allow> const { %s }\n", joinPrefixes(e.Allow))
		fmt.Fprintf(&b, "pass out quick inet from %s to <allow> keep state\n", addr)
	}
	if e.AllowAll {
		if len(e.Deny) > 0 {
			fmt.Fprintf(&b, "table <deny> const { %s }\n", joinPrefixes(e.Deny))
			fmt.Fprintf(&b, "block drop quick inet from %s to <deny>\n", addr)
		}
		fmt.Fprintf(&b, "pass out quick inet from %s to any keep state\n", addr)
		return b.Bytes()
	}
	fmt.Fprintf(&b, "block drop quick inet from %s to any\n", addr)
	return b.Bytes()
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Masked().String()
	}
	return strings.Join(s, ", ")
}

// pkillCmd signals every process of jail jid (sig: STOP, CONT, KILL).
func pkillCmd(sig string, jid int) []string {
	return []string{"pkill", "-" + sig, "-j", strconv.Itoa(jid)}
}

// psStatesCmd lists the state of every process in jail jid.
func psStatesCmd(jid int) []string {
	return []string{"ps", "-o", "state=", "-J", strconv.Itoa(jid)}
}

// devfsMountsCmd lists the mounted devfs file systems (fstab format).
func devfsMountsCmd() []string      { return []string{"mount", "-p", "-t", "devfs"} }
func umountCmd(dir string) []string { return []string{"umount", "-f", dir} }

// jailEntry is one line of jls output.
type jailEntry struct {
	JID  int
	Name string
	Path string
	Addr netip.Addr // first IPv4 address; invalid if none
}

// parseJls parses the output of jlsCmd.
func parseJls(out []byte) ([]jailEntry, error) {
	var res []jailEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	first := true
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			first = false
			if strings.HasPrefix(line, "jid ") {
				continue
			}
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("parse jls line %q: want 4 fields", line)
		}
		jid, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("parse jls line %q: %w", line, err)
		}
		e := jailEntry{JID: jid, Name: f[1], Path: f[2]}
		first, _, _ := strings.Cut(f[3], ",")
		if a, err := netip.ParseAddr(first); err == nil && a.Is4() {
			e.Addr = a
		}
		res = append(res, e)
	}
	return res, sc.Err()
}

// parseJID parses the jid `jail -i -c` prints.
func parseJID(out []byte) (int, error) {
	s := strings.TrimSpace(string(out))
	jid, err := strconv.Atoi(s)
	if err != nil || jid <= 0 {
		return 0, fmt.Errorf("parse jid %q: not a positive number", s)
	}
	return jid, nil
}

// parseChildren returns the last path element of each line of out that is a direct child of parent
// (zfs list output, pfctl -s Anchors output), sorted and deduplicated.
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

// parseRctlJails returns the jail names with rules in rctl output ("jail:<name>:<resource>:<action>=...").
func parseRctlJails(out []byte) []string {
	var res []string
	for line := range strings.Lines(string(out)) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "jail:")
		if !ok {
			continue
		}
		if name, _, ok := strings.Cut(rest, ":"); ok && name != "" {
			res = append(res, name)
		}
	}
	slices.Sort(res)
	return slices.Compact(res)
}

// usageFrom turns `rctl -u` figures and the jail's limits into a runtime.Usage (-1 for a figure rctl did
// not report).
func usageFrom(u map[string]int64, l limits) runtime.Usage {
	get := func(k string) int64 {
		if v, ok := u[k]; ok {
			return v
		}
		return -1
	}
	return runtime.Usage{
		MemoryBytes:      get("memoryuse"),
		Processes:        int(get("maxproc")),
		OpenFiles:        int(get("openfiles")),
		CPUPercent:       float64(get("pcpu")),
		MemoryLimitBytes: int64(l.MemoryMB) << 20,
		MaxProcesses:     l.MaxProc,
		MaxOpenFiles:     l.OpenFiles,
	}
}

// parseRctlUsage parses `rctl -u` output ("resource=value" lines) into a map.
func parseRctlUsage(out []byte) (map[string]int64, error) {
	res := map[string]int64{}
	for line := range strings.Lines(string(out)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse rctl usage %q: %w", line, err)
		}
		res[k] = n
	}
	return res, nil
}

// parseDevfsMounts returns the mountpoints in `mount -p -t devfs` output.
func parseDevfsMounts(out []byte) []string {
	var res []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) >= 2 {
			res = append(res, f[1])
		}
	}
	return res
}

// allStopped reports whether every process state in `ps -o state=` output is stopped (T) or a zombie (Z).
func allStopped(out []byte) bool {
	for line := range strings.Lines(string(out)) {
		s := strings.TrimSpace(line)
		if s != "" && s[0] != 'T' && s[0] != 'Z' {
			return false
		}
	}
	return true
}
