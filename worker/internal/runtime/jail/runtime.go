// Package jail is the FreeBSD jail runtime: each sandbox is a jail on its own root file system, a ZFS clone
// of the template's snapshot (or, on hosts without ZFS, a copy of the template's directory), with an
// address on a loopback interface, rctl limits and a pf anchor holding its egress policy.
//
// Create, step by step, undoing the steps done in reverse order when one fails:
//
//	zfs clone -o mountpoint=<root> <tmpl>@<snap> <sbx-dataset>/<id>   (or: cp -a <template dir> <root>)
//	jail -i -c name=<prefix>-<id> path=<root> ... persist mount.devfs ip4.addr=<if>|<addr>/32
//	    (or, with Config.VNETBridge: an epair on the bridge, vnet vnet.interface=<epair>b; see vnet.go)
//	rctl -a jail:<prefix>-<id>:memoryuse:sigkill=<n>m   (then maxproc, openfiles, pcpu: deny)
//	pfctl -a <prefix>/<id> -f -                      (deny all egress but the allow list, on stdin)
//
// Destroy: pkill -KILL -j <jid>, jail -r, pfctl -F all on the anchor, rctl -r (the policy and limits hold
// until the last process is gone), umount its devfs if still mounted, zfs destroy -r (or chflags + rm -rf). Pause is SIGSTOP to every process of the jail, repeated
// until ps shows them all stopped; Resume is SIGCONT. Snapshots outlive their sandboxes (snapshot.go):
// `zfs snapshot`, then `zfs send | zfs recv` into <SnapshotDataset>/<name> (or a copy of the root into
// DataDir/snapshots/<name>), and a sandbox made from one is a clone (or a copy) of it. Usage is
// `rctl -u`.
//
// Processes are started inside with SysProcAttr.Jail (jail_attach(2) in the forked child): the worker
// itself never enters a jail. That needs FreeBSD; elsewhere Command and Prepare fail, but every system
// command goes through an executor.Executor, so the command lines and their order are unit tested on any
// OS with executor.Recorder. Nothing here has been run on FreeBSD by its tests.
package jail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
)

// Name is the runtime's name in configuration and heartbeats.
const Name = "jail"

// Config configures the jail runtime.
type Config struct {
	// DataDir holds the jail roots, as DataDir/sandboxes/<id> (clone mountpoints or copies), and without
	// ZFS the snapshots, as DataDir/snapshots/<name>.
	DataDir string
	// SandboxDataset is the ZFS file system the clones are made under (pool/fleetbox/sbx); empty: no ZFS,
	// sandboxes are copies of TemplateDir/<template>.
	SandboxDataset string
	// TemplateDataset holds one file system per template (pool/fleetbox/tmpl/<template>), each with the
	// snapshot TemplateSnapshot (default "base") that sandboxes are cloned from.
	TemplateDataset  string
	TemplateSnapshot string
	// SnapshotDataset holds the snapshots (<SnapshotDataset>/<name>, each with the snapshot @<name> that
	// sandboxes are cloned from); it must exist (build-jail-template.sh makes <pool>/fleetbox/snap) and
	// must not be SandboxDataset or below it. Default: "snap" beside SandboxDataset (pool/fleetbox/snap
	// for pool/fleetbox/sbx). Without ZFS, snapshots are copies in DataDir/snapshots/<name>.
	SnapshotDataset string
	// TemplateDir holds one directory per template, copied when SandboxDataset is empty.
	TemplateDir string
	// DefaultTemplate is the template of a Spec without one; default "base".
	DefaultTemplate string
	// Prefix names this worker's jails (<prefix>-<id>) and pf anchors (<prefix>/<id>); default "sbx".
	// Cleanup takes everything under it as this worker's.
	Prefix string
	// Interface carries the jails' addresses (default lo1); Subnet is where they come from (default
	// 10.77.0.0/16; the network and first addresses are not used).
	Interface string
	Subnet    netip.Prefix
	// VNETBridge, if set, gives each jail its own network stack: an epair whose host end joins this bridge,
	// which must hold the subnet's first address (the jails' default route). See vnet.go.
	VNETBridge string
	// EgressAllow is the egress allow list a new sandbox starts with (empty: no egress at all).
	EgressAllow []netip.Prefix
	// DevfsRuleset (default 4, or 5 with VNET: devfsrules_jail_vnet) and Securelevel (default 2) are the jails' parameters of the same name.
	DevfsRuleset int
	Securelevel  int
	// UID and GID are the credentials of processes whose caller set none: the template's sandbox user
	// (default 1000:1000, as build-jail-template.sh makes "user"; < 0: root in the jail).
	UID, GID int
	// MaxProc and OpenFiles are the rctl limits of every jail (defaults 512 and 8192; < 0: no rule).
	MaxProc   int
	OpenFiles int
	// Exec runs the system commands; default executor.Real.
	Exec   executor.Executor
	Logger *slog.Logger
}

// Runtime is the jail runtime.
type Runtime struct {
	cfg     Config
	dir     string // DataDir/sandboxes
	snapDir string // DataDir/snapshots (without ZFS)
	exec    executor.Executor
	log     *slog.Logger
	now     func() time.Time // names deleted snapshots that still have clones (tests fix it)

	mu       sync.Mutex
	addrs    map[netip.Addr]string // allocated address → sandbox id
	snapBusy map[string]bool       // snapshot names being made
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns a jail runtime. It runs no command: the host is checked by the first Create or Cleanup.
func New(cfg Config) (*Runtime, error) {
	if cfg.DataDir == "" || !filepath.IsAbs(cfg.DataDir) {
		return nil, fmt.Errorf("jail runtime: data directory %q is not absolute", cfg.DataDir)
	}
	if cfg.SandboxDataset != "" && cfg.TemplateDataset == "" {
		return nil, errors.New("jail runtime: SandboxDataset needs TemplateDataset")
	}
	if cfg.SandboxDataset == "" && cfg.TemplateDir == "" {
		return nil, errors.New("jail runtime: no template dataset or directory")
	}
	if cfg.TemplateSnapshot == "" {
		cfg.TemplateSnapshot = "base"
	}
	if cfg.SandboxDataset != "" {
		if cfg.SnapshotDataset == "" {
			i := strings.LastIndexByte(cfg.SandboxDataset, '/')
			if i <= 0 {
				return nil, fmt.Errorf("jail runtime: SandboxDataset %q has no parent for the default SnapshotDataset: set it", cfg.SandboxDataset)
			}
			cfg.SnapshotDataset = cfg.SandboxDataset[:i] + "/snap"
		}
		if cfg.SnapshotDataset == cfg.SandboxDataset || strings.HasPrefix(cfg.SnapshotDataset, cfg.SandboxDataset+"/") {
			return nil, fmt.Errorf("jail runtime: SnapshotDataset %q must not be SandboxDataset or below it (Cleanup would take it for a sandbox)", cfg.SnapshotDataset)
		}
	}
	if cfg.DefaultTemplate == "" {
		cfg.DefaultTemplate = "base"
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "sbx"
	}
	if !schema.ValidSandboxID(cfg.Prefix) {
		return nil, fmt.Errorf("jail runtime: invalid prefix %q (lowercase letters and digits)", cfg.Prefix)
	}
	if cfg.Interface == "" {
		cfg.Interface = "lo1"
	}
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = netip.MustParsePrefix("10.77.0.0/16")
	}
	if !cfg.Subnet.Addr().Is4() || cfg.Subnet.Bits() > 30 {
		return nil, fmt.Errorf("jail runtime: subnet %s: want IPv4, /30 or larger", cfg.Subnet)
	}
	cfg.Subnet = cfg.Subnet.Masked()
	if cfg.DevfsRuleset == 0 {
		cfg.DevfsRuleset = 4
		if cfg.VNETBridge != "" {
			cfg.DevfsRuleset = 5
		}
	}
	if cfg.Securelevel == 0 {
		cfg.Securelevel = 2
	}
	if cfg.UID == 0 {
		cfg.UID = 1000
	}
	if cfg.GID == 0 {
		cfg.GID = 1000
	}
	if cfg.MaxProc == 0 {
		cfg.MaxProc = 512
	}
	if cfg.OpenFiles == 0 {
		cfg.OpenFiles = 8192
	}
	ex := cfg.Exec
	if ex == nil {
		ex = executor.Real{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Runtime{
		cfg:      cfg,
		dir:      filepath.Join(filepath.Clean(cfg.DataDir), "sandboxes"),
		snapDir:  filepath.Join(filepath.Clean(cfg.DataDir), "snapshots"),
		exec:     ex,
		log:      log.With(logkey.Subsystem, "runtime"),
		now:      time.Now,
		addrs:    map[netip.Addr]string{},
		snapBusy: map[string]bool{},
	}, nil
}

// Name returns "jail".
func (r *Runtime) Name() string { return Name }

func (r *Runtime) names(id string) names {
	n := names{
		ID:     id,
		Jail:   r.cfg.Prefix + "-" + id,
		Root:   filepath.Join(r.dir, id),
		Anchor: r.cfg.Prefix + "/" + id,
	}
	if r.cfg.SandboxDataset != "" {
		n.Dataset = r.cfg.SandboxDataset + "/" + id
	}
	return n
}

func (r *Runtime) run(ctx context.Context, argv []string, stdin []byte) ([]byte, error) {
	return r.exec.Run(ctx, argv, stdin)
}

// Create clones the template (or snapshot Spec.Snapshot), starts the jail and applies its limits and
// egress policy.
func (r *Runtime) Create(ctx context.Context, spec runtime.Spec) (runtime.Sandbox, error) {
	if !schema.ValidSandboxID(spec.ID) {
		return nil, fmt.Errorf("create sandbox: invalid id %q", spec.ID)
	}
	if spec.TemplateID == "" {
		spec.TemplateID = r.cfg.DefaultTemplate
	}
	if strings.ContainsAny(spec.TemplateID, "/@ \t\n") || strings.HasPrefix(spec.TemplateID, ".") {
		return nil, fmt.Errorf("create sandbox %s: invalid template %q", spec.ID, spec.TemplateID)
	}
	if spec.Snapshot != "" && !schema.ValidSandboxID(spec.Snapshot) {
		return nil, fmt.Errorf("create sandbox %s: invalid snapshot name %q", spec.ID, spec.Snapshot)
	}
	n := r.names(spec.ID)
	addr, err := r.allocAddr(spec.ID)
	if err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", spec.ID, err)
	}
	s := &Sandbox{
		rt:       r,
		n:        n,
		id:       spec.ID,
		root:     n.Root,
		addr:     addr,
		lim:      r.limitsFor(spec),
		snapshot: spec.Snapshot,
		egress:   r.egressFor(spec),
		env:      sandboxEnv(spec.ID, spec.EnvVars),
		log:      r.log.With(logkey.SandboxID, spec.ID),
	}
	if err := s.create(ctx, spec); err != nil {
		r.freeAddr(addr)
		return nil, fmt.Errorf("create sandbox %s: %w", spec.ID, err)
	}
	return s, nil
}

// limitsFor derives the rctl limits of a sandbox from its spec and the runtime's configuration.
func (r *Runtime) limitsFor(spec runtime.Spec) limits {
	l := limits{MemoryMB: spec.MemoryMB, PCPU: 100 * spec.CPUCount}
	if r.cfg.MaxProc > 0 {
		l.MaxProc = r.cfg.MaxProc
	}
	if r.cfg.OpenFiles > 0 {
		l.OpenFiles = r.cfg.OpenFiles
	}
	return l
}

// allocAddr gives sandbox id the lowest free address of the subnet (skipping the network address, the
// first host address, which is left for the host, and the broadcast address).
func (r *Runtime) allocAddr(id string) (netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.cfg.Subnet.Addr().Next().Next()
	for ; r.cfg.Subnet.Contains(a) && r.cfg.Subnet.Contains(a.Next()); a = a.Next() {
		if _, used := r.addrs[a]; !used {
			r.addrs[a] = id
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address in %s", r.cfg.Subnet)
}

func (r *Runtime) freeAddr(a netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.addrs, a)
}

// Capabilities: a jail has its own root, is a security boundary and has its own egress policy.
func (r *Runtime) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{OwnRoot: true, Isolated: true, Egress: true}
}

// egressFor is a new sandbox's egress policy: the spec's, or the configured allow list.
func (r *Runtime) egressFor(spec runtime.Spec) runtime.Egress {
	if spec.Egress != nil {
		return cloneEgress(*spec.Egress)
	}
	return runtime.Egress{Allow: slices.Clone(r.cfg.EgressAllow)}
}
