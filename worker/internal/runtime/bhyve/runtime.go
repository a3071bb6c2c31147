// Package bhyve is the FreeBSD bhyve runtime: each sandbox is a VM booted from a zvol clone of a golden
// image, with a tap interface on a host-only bridge, the sandbox user's home shared from the host over
// virtio-9p and its serial console in a log file. The guest runs the sandbox agent (package agent,
// cmd/sbx-agent), which the worker reaches at the VM's IPv6 link-local address on the bridge: the MAC is
// derived from the VM's name and the address from the MAC (modified EUI-64), so no DHCP is needed.
//
// Create, undoing the steps done in reverse order when one fails:
//
//	zfs clone -o volmode=dev <img>@<snap> <vm-dataset>/<id>
//	ifconfig tap create; ifconfig tapN description <prefix>-<id>; ifconfig <bridge> addm tapN;
//	ifconfig <bridge> private tapN; ifconfig tapN up
//	mkdir <data>/vms/<id>/home (owned by the sandbox user)
//	bhyve -c N -m MM -H -P -D -s ... -s 5,virtio-9p,home=<data>/vms/<id>/home ... <prefix>-<id>   (console → log file)
//	wait until the agent answers (Config.BootTimeout)
//
// Processes: Command and Prepare return an *exec.Cmd that runs the worker's own executable as the agent
// client ("agent-exec", agent.ExecMain) with the guest argv, directory and environment; the client runs
// with the credentials of the guest user (the sandbox user unless the caller set others), and the agent
// runs the process as that user. Files: HostPath reaches /home/user (the 9p share) and nothing else.
// Pause is SIGSTOP to the bhyve process, Resume SIGCONT. Destroy: close the clients' lifeline (they
// exit), bhyvectl --destroy, wait for bhyve to exit, destroy the tap, destroy the clone, remove the VM's
// directory with the home in it.
//
// Not done yet: terminals (a process's stdin, stdout and stderr in the guest are pipes), usage,
// checkpoints (bhyvectl --suspend needs a BHYVE_SNAPSHOT kernel), snapshots. Every system command goes
// through an executor.Executor and the bhyve process through a Launcher, so the command lines and their
// order are unit tested on any OS, and the agent side with a real agent on loopback; nothing here has
// been run on FreeBSD by its tests.
package bhyve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/agent"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
)

// Name is the runtime's name in configuration and heartbeats.
const Name = "bhyve"

// Config configures the bhyve runtime.
type Config struct {
	// DataDir holds per-VM files as DataDir/vms/<id>/: the console log and home/, the directory shared
	// with the guest as /home/user.
	DataDir string
	// VMDataset holds the VMs' disks (pool/fleetbox/vm/<id>); ImageDataset one volume per template
	// (pool/fleetbox/img/<template>) with snapshot ImageSnapshot (default "base").
	VMDataset     string
	ImageDataset  string
	ImageSnapshot string
	// DefaultTemplate is the image of a Spec without template; default "base".
	DefaultTemplate string
	// Bridge is the host-only bridge the taps join (default bridge1).
	Bridge string
	// BootROM is the UEFI firmware (default /usr/local/share/uefi-firmware/BHYVE_UEFI.fd).
	BootROM string
	// Prefix names this worker's VMs and taps (<prefix>-<id>); default "fbvm".
	Prefix string
	// VMMDir lists the host's vmm instances (default /dev/vmm).
	VMMDir string
	// StopTimeout bounds how long Destroy waits for bhyve to exit after bhyvectl --destroy (default 10 s).
	StopTimeout time.Duration
	// BootTimeout bounds how long Create waits for the guest agent to answer (default 60 s).
	BootTimeout time.Duration
	// AgentPort is the guest agent's TCP port (default agent.DefaultPort).
	AgentPort int
	// AgentClient is the executable that runs a VM's processes as the agent client: it is started as
	// "<AgentClient> agent-exec -addr ... -- argv" (agent.ExecMain). Default: this executable
	// (os.Executable()), the worker binary, which dispatches agent-exec.
	AgentClient string
	// AgentAddress, if set, gives the agent address (host:port) of the VM named vmName instead of its
	// link-local address on Bridge. For tests and development only: it lets a real agent on loopback
	// stand in for a guest.
	AgentAddress func(vmName string) string
	// UID and GID are the image's sandbox user (default 1000:1000, as build-bhyve-image.sh makes it;
	// a negative UID means root): processes run as it unless their caller sets other credentials, and
	// it owns the shared home.
	UID, GID int
	Exec     executor.Executor // default executor.Real
	Launcher Launcher          // default ExecLauncher
	Logger   *slog.Logger
}

// Runtime is the bhyve runtime.
type Runtime struct {
	cfg    Config
	dir    string
	exec   executor.Executor
	launch Launcher
	log    *slog.Logger
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns a bhyve runtime. It runs no command.
func New(cfg Config) (*Runtime, error) {
	if cfg.DataDir == "" || !filepath.IsAbs(cfg.DataDir) {
		return nil, fmt.Errorf("bhyve runtime: data directory %q is not absolute", cfg.DataDir)
	}
	if strings.ContainsAny(cfg.DataDir, ",= \t\n") {
		// It ends up in bhyve's -s option (home=<dir>), which commas and '=' would split.
		return nil, fmt.Errorf("bhyve runtime: data directory %q has a comma, '=' or white space", cfg.DataDir)
	}
	if cfg.VMDataset == "" || cfg.ImageDataset == "" {
		return nil, errors.New("bhyve runtime: VMDataset and ImageDataset are required")
	}
	if cfg.ImageSnapshot == "" {
		cfg.ImageSnapshot = "base"
	}
	if cfg.DefaultTemplate == "" {
		cfg.DefaultTemplate = "base"
	}
	if cfg.Bridge == "" {
		cfg.Bridge = "bridge1"
	}
	if cfg.BootROM == "" {
		cfg.BootROM = "/usr/local/share/uefi-firmware/BHYVE_UEFI.fd"
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "fbvm"
	}
	if !schema.ValidSandboxID(cfg.Prefix) {
		return nil, fmt.Errorf("bhyve runtime: invalid prefix %q", cfg.Prefix)
	}
	if cfg.VMMDir == "" {
		cfg.VMMDir = "/dev/vmm"
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.BootTimeout <= 0 {
		cfg.BootTimeout = 60 * time.Second
	}
	if cfg.AgentPort <= 0 {
		cfg.AgentPort = agent.DefaultPort
	}
	if cfg.AgentPort > 65535 {
		return nil, fmt.Errorf("bhyve runtime: agent port %d", cfg.AgentPort)
	}
	if cfg.AgentClient == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("bhyve runtime: agent client: %w", err)
		}
		cfg.AgentClient = exe
	}
	if !filepath.IsAbs(cfg.AgentClient) {
		return nil, fmt.Errorf("bhyve runtime: agent client %q is not absolute", cfg.AgentClient)
	}
	if cfg.UID == 0 {
		cfg.UID = 1000
	}
	if cfg.GID == 0 {
		cfg.GID = 1000
	}
	if cfg.Exec == nil {
		cfg.Exec = executor.Real{}
	}
	if cfg.Launcher == nil {
		cfg.Launcher = ExecLauncher{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Runtime{
		cfg:    cfg,
		dir:    filepath.Join(filepath.Clean(cfg.DataDir), "vms"),
		exec:   cfg.Exec,
		launch: cfg.Launcher,
		log:    log.With(logkey.Subsystem, "runtime"),
	}, nil
}

// Name returns "bhyve".
func (r *Runtime) Name() string { return Name }

func (r *Runtime) run(ctx context.Context, argv []string) ([]byte, error) {
	return r.exec.Run(ctx, argv, nil)
}

// Create clones the image, makes the tap and starts bhyve.
func (r *Runtime) Create(ctx context.Context, spec runtime.Spec) (runtime.Sandbox, error) {
	if !schema.ValidSandboxID(spec.ID) {
		return nil, fmt.Errorf("create vm: invalid id %q", spec.ID)
	}
	if spec.TemplateID == "" {
		spec.TemplateID = r.cfg.DefaultTemplate
	}
	if strings.ContainsAny(spec.TemplateID, "/@ \t\n") || strings.HasPrefix(spec.TemplateID, ".") {
		return nil, fmt.Errorf("create vm %s: invalid template %q", spec.ID, spec.TemplateID)
	}
	if spec.Snapshot != "" {
		return nil, fmt.Errorf("create vm %s from snapshot %s: %w", spec.ID, spec.Snapshot, runtime.ErrNotSupported)
	}
	dir := filepath.Join(r.dir, spec.ID)
	vm := &VM{
		rt:      r,
		id:      spec.ID,
		name:    r.cfg.Prefix + "-" + spec.ID,
		dataset: r.cfg.VMDataset + "/" + spec.ID,
		dir:     dir,
		home:    filepath.Join(dir, "home"),
		env:     guestEnv(spec.ID, spec.EnvVars),
		log:     r.log.With(logkey.SandboxID, spec.ID),
	}
	if err := vm.create(ctx, spec); err != nil {
		return nil, fmt.Errorf("create vm %s: %w", spec.ID, err)
	}
	return vm, nil
}

// undo removes what a failed Create made, in reverse order, even when ctx has ended.
func (r *Runtime) undo(ctx context.Context, vmName, tap, dataset, dir string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return r.teardown(ctx, vmName, tap, dataset, dir)
}

// teardown destroys the vmm instance (if vmName is set), the tap (if set), the disk (if set) and the VM's
// directory, going on past failures. Objects already gone are not errors.
func (r *Runtime) teardown(ctx context.Context, vmName, tap, dataset, dir string) error {
	var errs []error
	step := func(what string, argv []string) {
		if _, err := r.run(ctx, argv); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	if vmName != "" {
		step("destroy vmm instance", bhyvectlDestroyCmd(vmName))
	}
	if tap != "" {
		step("destroy tap", tapDestroyCmd(tap))
	}
	if dataset != "" {
		step("destroy disk", zfsDestroyCmd(dataset))
	}
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove vm directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

func gone(err error) bool {
	var ee *executor.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	msg := strings.ToLower(ee.Stderr)
	return strings.Contains(msg, "does not exist") || strings.Contains(msg, "no such") || strings.Contains(msg, "not found")
}

// user returns the uid and gid of the sandbox user.
func (r *Runtime) user() (uid, gid int) {
	if r.cfg.UID < 0 {
		return 0, 0
	}
	return r.cfg.UID, max(r.cfg.GID, 0)
}

// Capabilities: a VM has its own root and is a security boundary.
func (r *Runtime) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{OwnRoot: true, Isolated: true}
}
