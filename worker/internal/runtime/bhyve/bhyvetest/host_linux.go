package bhyvetest

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"fleetbox.dev/worker/internal/runtime/bhyve"
	"fleetbox.dev/worker/internal/runtime/executor"
)

// Host stands in for the host's zfs, ifconfig and bhyvectl (an executor.Executor) and bhyve (a
// bhyve.Launcher), keeping their state: datasets, taps and their descriptions, vmm instances (files in
// the VMM directory, as /dev/vmm lists them) and the fake guests. It answers the command lines the
// runtime runs (the bhyve package's unit tests check those lines) and fails any other.
type Host struct {
	vmmDir string

	mu       sync.Mutex
	datasets map[string]bool
	taps     map[string]string // tap → description
	nextTap  int
	guests   map[string]*Guest // by vm name
}

var (
	_ executor.Executor = (*Host)(nil)
	_ bhyve.Launcher    = (*Host)(nil)
)

// NewHost returns a host whose vmm instances are files in vmmDir (bhyve.Config.VMMDir). Its guests are
// destroyed at the end of the test, whatever the test left.
func NewHost(tb testing.TB, vmmDir string) *Host {
	tb.Helper()
	if err := os.MkdirAll(vmmDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	h := &Host{vmmDir: vmmDir, datasets: map[string]bool{}, taps: map[string]string{}, guests: map[string]*Guest{}}
	tb.Cleanup(func() {
		h.mu.Lock()
		guests := slices.Collect(maps.Values(h.guests))
		h.mu.Unlock()
		for _, g := range guests {
			g.destroy()
		}
	})
	return h
}

func fail(argv []string, msg string) error {
	return &executor.ExitError{Argv: argv, Code: 1, Stderr: msg}
}

// Run answers the commands the runtime runs from the host's state.
func (h *Host) Run(ctx context.Context, argv []string, _ []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, fail(argv, "fake host: empty command")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	line := strings.Join(argv, " ")
	switch {
	case len(argv) == 6 && strings.HasPrefix(line, "zfs clone -o volmode=dev "): // zfs clone -o volmode=dev SNAP DATASET
		if h.datasets[argv[5]] {
			return nil, fail(argv, fmt.Sprintf("cannot create '%s': dataset already exists", argv[5]))
		}
		h.datasets[argv[5]] = true
		return nil, nil
	case len(argv) == 4 && strings.HasPrefix(line, "zfs destroy -r "):
		if !h.datasets[argv[3]] {
			return nil, fail(argv, fmt.Sprintf("cannot open '%s': dataset does not exist", argv[3]))
		}
		delete(h.datasets, argv[3])
		return nil, nil
	case len(argv) == 10 && strings.HasPrefix(line, "zfs list -H -o name -t volume -d 1 "):
		out := argv[9] + "\n"
		for ds := range h.datasets {
			if strings.HasPrefix(ds, argv[9]+"/") {
				out += ds + "\n"
			}
		}
		return []byte(out), nil
	case line == "ifconfig tap create":
		tap := "tap" + strconv.Itoa(h.nextTap)
		h.nextTap++
		h.taps[tap] = ""
		return []byte(tap + "\n"), nil
	case line == "ifconfig -g tap":
		var out strings.Builder
		for tap := range h.taps {
			out.WriteString(tap + ": flags=8943<UP,BROADCAST,RUNNING> metric 0 mtu 1500\n")
		}
		if out.Len() == 0 {
			return nil, fail(argv, "")
		}
		return []byte(out.String()), nil
	case argv[0] == "ifconfig" && len(argv) >= 2 && strings.HasPrefix(argv[1], "tap"):
		tap := argv[1]
		desc, ok := h.taps[tap]
		if !ok {
			return nil, fail(argv, "ifconfig: interface "+tap+" does not exist")
		}
		switch {
		case len(argv) == 2:
			return []byte(tap + ": flags=8943 metric 0 mtu 1500\n\tdescription: " + desc + "\n"), nil
		case len(argv) == 4 && argv[2] == "description":
			h.taps[tap] = argv[3]
		case len(argv) == 3 && argv[2] == "destroy":
			delete(h.taps, tap)
		case len(argv) == 3 && argv[2] == "up":
		default:
			return nil, fail(argv, "unexpected ifconfig command")
		}
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 4 && (argv[2] == "addm" || argv[2] == "private"):
		if _, ok := h.taps[argv[3]]; !ok {
			return nil, fail(argv, "ifconfig: interface "+argv[3]+" does not exist")
		}
		return nil, nil
	case argv[0] == "bhyvectl" && len(argv) == 3 && strings.HasPrefix(argv[1], "--vm=") && argv[2] == "--destroy":
		name := strings.TrimPrefix(argv[1], "--vm=")
		g, ok := h.guests[name]
		if !ok {
			return nil, fail(argv, "vm_open: "+name+" could not be opened: No such file or directory")
		}
		delete(h.guests, name)
		h.mu.Unlock()
		g.destroy()
		h.mu.Lock()
		return nil, nil
	}
	return nil, fail(argv, "fake host: unexpected command")
}

// Pipe fails: the runtime pipes no commands (it has no snapshots).
func (h *Host) Pipe(_ context.Context, from, to []string) ([]byte, error) {
	return nil, fail(from, "fake host: unexpected pipe to "+strings.Join(to, " "))
}

// Launch starts a fake guest for a bhyve command line: its name is the last argument, its home the
// directory of the 9p share "home", its console log console.
func (h *Host) Launch(argv []string, console string) (bhyve.Process, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("fake bhyve: empty command line")
	}
	name := argv[len(argv)-1]
	var home string
	for _, a := range argv {
		if _, v, ok := strings.Cut(a, ",virtio-9p,home="); ok {
			home = v
		}
	}
	if home == "" {
		return nil, fmt.Errorf("fake bhyve: no 9p home in %q", argv)
	}
	g, err := startGuest(home, console)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(h.vmmDir, name), nil, 0o600); err != nil {
		g.destroy()
		return nil, err
	}
	g.vmmFile = filepath.Join(h.vmmDir, name)
	h.mu.Lock()
	h.guests[name] = g
	h.mu.Unlock()
	return g, nil
}

// AgentAddr is the agent address of VM vmName (bhyve.Config.AgentAddress): its guest's, or a closed
// port.
func (h *Host) AgentAddr(vmName string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if g := h.guests[vmName]; g != nil {
		return g.addr
	}
	return "127.0.0.1:1"
}

// Guest returns the guest of VM vmName (bhyve.Config.Prefix + "-" + sandbox id), nil if there is none.
func (h *Host) Guest(vmName string) *Guest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.guests[vmName]
}

// Objects lists what the host holds, sorted: "dataset <name>", "tap <name> <description>", "vm <name>"
// (a guest whose vmm instance was not destroyed), "vmm <name>" (a file in the VMM directory). A host
// whose VMs were all destroyed lists nothing.
func (h *Host) Objects() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for ds := range h.datasets {
		out = append(out, "dataset "+ds)
	}
	for tap, desc := range h.taps {
		out = append(out, "tap "+tap+" "+desc)
	}
	for name := range h.guests {
		out = append(out, "vm "+name)
	}
	entries, _ := os.ReadDir(h.vmmDir)
	for _, e := range entries {
		out = append(out, "vmm "+e.Name())
	}
	slices.Sort(out)
	return out
}
