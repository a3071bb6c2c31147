package jail_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
	"fleetbox.dev/worker/internal/runtime/jail"
	"fleetbox.dev/worker/internal/runtime/runtimetest"
)

// TestJailConformance runs the runtime conformance suite (runtimetest.Run) against real jails. It is
// opt-in: FLEETBOX_JAIL_CONFORMANCE=1 on a FreeBSD host prepared by deploy/freebsd (prepare-host.sh,
// build-jail-template.sh), as root; without the variable it skips, and with it anywhere else it fails.
// `make freebsd-conformance` builds it as bin/freebsd/jail-conformance.test; deploy/freebsd/smoke-test.sh
// -c runs it. Its settings come from the environment (see conformanceEnv).
//
// Every subtest gets a runtime of its own, so that they run in parallel and one's Cleanup cannot touch
// another's jails: prefix <FLEETBOX_JAIL_PREFIX><n>, data directory <FLEETBOX_JAIL_DATA>/<prefix>,
// addresses from the n-th /28 of FLEETBOX_JAIL_SUBNET and, with ZFS, datasets
// <FLEETBOX_JAIL_SANDBOX_DATASET>/<prefix>/{sbx,snap} that the test makes and destroys.
func TestJailConformance(t *testing.T) {
	if os.Getenv("FLEETBOX_JAIL_CONFORMANCE") != "1" {
		t.Skip("the jail conformance suite runs with FLEETBOX_JAIL_CONFORMANCE=1, as root on a prepared FreeBSD host (deploy/freebsd/README.md)")
	}
	if goruntime.GOOS != "freebsd" {
		t.Fatalf("FLEETBOX_JAIL_CONFORMANCE=1, but jails need FreeBSD, not %s", goruntime.GOOS)
	}
	if os.Geteuid() != 0 {
		t.Fatal("FLEETBOX_JAIL_CONFORMANCE=1, but jails need root")
	}
	env, err := conformanceEnvFrom(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("jail conformance settings: %+v", env)
	var n atomic.Int32
	runtimetest.Run(t, func(t *testing.T) runtime.Runtime { return env.newRuntime(t, int(n.Add(1))) })
}

// conformanceEnv is the suite's configuration, from the environment.
type conformanceEnv struct {
	// Data (FLEETBOX_JAIL_DATA, default /var/db/fleetbox/conformance) holds the runtimes' data directories.
	Data string
	// SandboxDataset (FLEETBOX_JAIL_SANDBOX_DATASET) is the parent of the suite's datasets; empty: no
	// ZFS, templates are copied from TemplateDir. It must be a dataset of its own, not the worker's
	// SandboxDataset (whose Cleanup would take the suite's datasets for leftover sandboxes).
	SandboxDataset string
	// TemplateDataset (FLEETBOX_JAIL_TEMPLATE_DATASET) holds the template "base" with snapshot @base;
	// needed with SandboxDataset.
	TemplateDataset string
	// SnapshotDataset (FLEETBOX_JAIL_SNAPSHOT_DATASET), if set, is the parent of the runtimes' snapshot
	// datasets instead of SandboxDataset.
	SnapshotDataset string
	// TemplateDir (FLEETBOX_JAIL_TEMPLATE_DIR) holds the template directory "base"; needed without ZFS.
	TemplateDir string
	// Prefix (FLEETBOX_JAIL_PREFIX, default "conf", never the worker's "sbx") starts the runtimes' prefixes.
	Prefix string
	// Subnet (FLEETBOX_JAIL_SUBNET, default 10.77.254.0/24, on lo1) is cut into one /28 per runtime.
	Subnet netip.Prefix
}

// runtimeBits is the size of each runtime's share of the subnet: 13 jail addresses.
const runtimeBits = 28

func conformanceEnvFrom(getenv func(string) string) (conformanceEnv, error) {
	e := conformanceEnv{
		Data:            getenv("FLEETBOX_JAIL_DATA"),
		SandboxDataset:  getenv("FLEETBOX_JAIL_SANDBOX_DATASET"),
		TemplateDataset: getenv("FLEETBOX_JAIL_TEMPLATE_DATASET"),
		SnapshotDataset: getenv("FLEETBOX_JAIL_SNAPSHOT_DATASET"),
		TemplateDir:     getenv("FLEETBOX_JAIL_TEMPLATE_DIR"),
		Prefix:          getenv("FLEETBOX_JAIL_PREFIX"),
	}
	if e.Data == "" {
		e.Data = "/var/db/fleetbox/conformance"
	}
	if !filepath.IsAbs(e.Data) {
		return e, fmt.Errorf("FLEETBOX_JAIL_DATA %q is not absolute", e.Data)
	}
	if e.Prefix == "" {
		e.Prefix = "conf"
	}
	if !schema.ValidSandboxID(e.Prefix) || e.Prefix == "sbx" {
		return e, fmt.Errorf("FLEETBOX_JAIL_PREFIX %q: want lowercase letters and digits, not the worker's sbx", e.Prefix)
	}
	subnet := getenv("FLEETBOX_JAIL_SUBNET")
	if subnet == "" {
		subnet = "10.77.254.0/24"
	}
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() > runtimeBits {
		return e, fmt.Errorf("FLEETBOX_JAIL_SUBNET %q: want an IPv4 prefix of /%d or larger", subnet, runtimeBits)
	}
	e.Subnet = p.Masked()
	switch {
	case e.SandboxDataset != "" && e.TemplateDataset == "":
		return e, fmt.Errorf("FLEETBOX_JAIL_SANDBOX_DATASET needs FLEETBOX_JAIL_TEMPLATE_DATASET")
	case e.SandboxDataset == "" && e.TemplateDir == "":
		return e, fmt.Errorf("set FLEETBOX_JAIL_SANDBOX_DATASET and FLEETBOX_JAIL_TEMPLATE_DATASET (ZFS) or FLEETBOX_JAIL_TEMPLATE_DIR (copies)")
	case e.SandboxDataset == "" && e.SnapshotDataset != "":
		return e, fmt.Errorf("FLEETBOX_JAIL_SNAPSHOT_DATASET needs FLEETBOX_JAIL_SANDBOX_DATASET")
	}
	return e, nil
}

// runtimeSetup is what runtime n of the suite is made of.
type runtimeSetup struct {
	cfg jail.Config
	// datasets are made (in order, unmounted) before the runtime and destroyed, with everything in them,
	// after it: the runtime's base dataset(s).
	datasets []string
	destroy  []string
}

// setup returns the configuration of the suite's runtime n (1-based).
func (e conformanceEnv) setup(n int) (runtimeSetup, error) {
	prefix := e.Prefix + strconv.Itoa(n)
	subnet, err := nthSubnet(e.Subnet, n-1)
	if err != nil {
		return runtimeSetup{}, err
	}
	s := runtimeSetup{cfg: jail.Config{
		DataDir:         filepath.Join(e.Data, prefix),
		TemplateDataset: e.TemplateDataset,
		TemplateDir:     e.TemplateDir,
		Prefix:          prefix,
		Subnet:          subnet,
	}}
	if e.SandboxDataset == "" {
		return s, nil
	}
	base := e.SandboxDataset + "/" + prefix
	s.cfg.SandboxDataset = base + "/sbx"
	s.cfg.SnapshotDataset = base + "/snap"
	s.datasets = []string{base, s.cfg.SandboxDataset}
	s.destroy = []string{base}
	if e.SnapshotDataset != "" {
		s.cfg.SnapshotDataset = e.SnapshotDataset + "/" + prefix
		s.destroy = append(s.destroy, s.cfg.SnapshotDataset)
	}
	s.datasets = append(s.datasets, s.cfg.SnapshotDataset)
	return s, nil
}

// nthSubnet is the i-th (0-based) /runtimeBits block of p.
func nthSubnet(p netip.Prefix, i int) (netip.Prefix, error) {
	if i < 0 || i >= 1<<(runtimeBits-p.Bits()) {
		return netip.Prefix{}, fmt.Errorf("subnet %s has no room for runtime %d (one /%d each): give FLEETBOX_JAIL_SUBNET a larger one", p, i+1, runtimeBits)
	}
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i) << (32 - runtimeBits)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), runtimeBits), nil
}

// newRuntime makes the suite's runtime n on this host, removes what an earlier, interrupted run left
// under its prefix, and removes everything of it when the test ends.
func (e conformanceEnv) newRuntime(t *testing.T, n int) runtime.Runtime {
	t.Helper()
	s, err := e.setup(n)
	if err != nil {
		t.Fatal(err)
	}
	ex := executor.Real{}
	ctx := t.Context()
	for _, ds := range s.datasets {
		if _, err := ex.Run(ctx, []string{"zfs", "create", "-p", "-o", "mountpoint=none", ds}, nil); err != nil {
			t.Fatalf("make dataset: %v", err)
		}
	}
	s.cfg.Exec = ex
	s.cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	rt, err := jail.New(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	wipe := func(ctx context.Context) error {
		if err := rt.Cleanup(ctx, nil); err != nil {
			return err
		}
		names, err := rt.Snapshots(ctx)
		if err != nil {
			return err
		}
		for _, name := range names {
			if err := rt.DeleteSnapshot(ctx, name); err != nil {
				return err
			}
		}
		return nil
	}
	if err := wipe(ctx); err != nil {
		t.Fatalf("remove leftovers of an earlier run: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := wipe(ctx); err != nil {
			t.Errorf("remove the runtime's sandboxes and snapshots: %v", err)
		}
		for _, ds := range slices.Backward(s.destroy) {
			if _, err := ex.Run(ctx, []string{"zfs", "destroy", "-r", ds}, nil); err != nil {
				t.Errorf("destroy %s: %v", ds, err)
			}
		}
		for _, argv := range [][]string{{"chflags", "-R", "0", s.cfg.DataDir}, {"rm", "-rf", s.cfg.DataDir}} {
			if _, err := ex.Run(ctx, argv, nil); err != nil {
				t.Errorf("remove %s: %v", s.cfg.DataDir, err)
			}
		}
	})
	return rt
}

// The suite's settings: defaults, per-runtime datasets, subnets and prefixes, and refusals. This part
// runs everywhere.
func TestConformanceEnv(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	zfs := []string{"FLEETBOX_JAIL_SANDBOX_DATASET", "zroot/fleetbox/conformance", "FLEETBOX_JAIL_TEMPLATE_DATASET", "zroot/fleetbox/tmpl"}

	e, err := conformanceEnvFrom(env(zfs...))
	if err != nil {
		t.Fatal(err)
	}
	if e.Data != "/var/db/fleetbox/conformance" || e.Prefix != "conf" || e.Subnet.String() != "10.77.254.0/24" {
		t.Errorf("defaults: %+v", e)
	}
	s, err := e.setup(3)
	if err != nil {
		t.Fatal(err)
	}
	want := jail.Config{
		DataDir: "/var/db/fleetbox/conformance/conf3", SandboxDataset: "zroot/fleetbox/conformance/conf3/sbx",
		TemplateDataset: "zroot/fleetbox/tmpl", SnapshotDataset: "zroot/fleetbox/conformance/conf3/snap",
		Prefix: "conf3", Subnet: netip.MustParsePrefix("10.77.254.32/28"),
	}
	if s.cfg.DataDir != want.DataDir || s.cfg.SandboxDataset != want.SandboxDataset || s.cfg.TemplateDataset != want.TemplateDataset ||
		s.cfg.SnapshotDataset != want.SnapshotDataset || s.cfg.Prefix != want.Prefix || s.cfg.Subnet != want.Subnet {
		t.Errorf("runtime 3: %+v\nwant %+v", s.cfg, want)
	}
	if !slices.Equal(s.datasets, []string{"zroot/fleetbox/conformance/conf3", "zroot/fleetbox/conformance/conf3/sbx", "zroot/fleetbox/conformance/conf3/snap"}) ||
		!slices.Equal(s.destroy, []string{"zroot/fleetbox/conformance/conf3"}) {
		t.Errorf("runtime 3 datasets: make %q, destroy %q", s.datasets, s.destroy)
	}
	if _, err := jail.New(s.cfg); err != nil {
		t.Errorf("the runtime 3 configuration is refused: %v", err)
	}
	if _, err := e.setup(17); err == nil {
		t.Error("a /24 gave a 17th /28")
	}

	e, err = conformanceEnvFrom(env(append(zfs, "FLEETBOX_JAIL_SNAPSHOT_DATASET", "zroot/snaps", "FLEETBOX_JAIL_PREFIX", "ci", "FLEETBOX_JAIL_SUBNET", "10.99.0.0/16")...))
	if err != nil {
		t.Fatal(err)
	}
	s, err = e.setup(1)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.SnapshotDataset != "zroot/snaps/ci1" || s.cfg.Subnet.String() != "10.99.0.0/28" ||
		!slices.Equal(s.destroy, []string{"zroot/fleetbox/conformance/ci1", "zroot/snaps/ci1"}) {
		t.Errorf("separate snapshot dataset: %+v, destroy %q", s.cfg, s.destroy)
	}

	e, err = conformanceEnvFrom(env("FLEETBOX_JAIL_TEMPLATE_DIR", "/usr/local/fleetbox/tmpl", "FLEETBOX_JAIL_DATA", "/tmp/c"))
	if err != nil {
		t.Fatal(err)
	}
	if s, err = e.setup(2); err != nil || s.cfg.SandboxDataset != "" || len(s.datasets) != 0 || s.cfg.DataDir != "/tmp/c/conf2" {
		t.Errorf("without ZFS: %+v, %v", s, err)
	}

	for _, bad := range [][]string{
		nil, // neither datasets nor a template directory
		{"FLEETBOX_JAIL_SANDBOX_DATASET", "zroot/x"},
		{"FLEETBOX_JAIL_TEMPLATE_DIR", "/t", "FLEETBOX_JAIL_SNAPSHOT_DATASET", "zroot/s"},
		append(slices.Clone(zfs), "FLEETBOX_JAIL_DATA", "relative"),
		append(slices.Clone(zfs), "FLEETBOX_JAIL_PREFIX", "sbx"),
		append(slices.Clone(zfs), "FLEETBOX_JAIL_PREFIX", "Conf-1"),
		append(slices.Clone(zfs), "FLEETBOX_JAIL_SUBNET", "fd00::/64"),
		append(slices.Clone(zfs), "FLEETBOX_JAIL_SUBNET", "10.0.0.0/30"),
	} {
		if e, err := conformanceEnvFrom(env(bad...)); err == nil {
			t.Errorf("settings %q accepted: %+v", bad, e)
		}
	}
}
