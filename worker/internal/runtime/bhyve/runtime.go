// Package bhyve is the FreeBSD bhyve runtime: each sandbox is a VM booted from a zvol clone of a golden
// image, with a tap interface on a host-only bridge and its serial console in a log file. The guest runs
// the sandbox agent, which the worker reaches over that network.
//
// Create, undoing the steps done in reverse order when one fails:
//
//	zfs clone -o volmode=dev <img>@<snap> <vm-dataset>/<id>
//	ifconfig tap create; ifconfig tapN description <prefix>-<id>; ifconfig <bridge> addm tapN; ifconfig tapN up
//	bhyve -c N -m MM -H -P -D -s ... -l com1,stdio -l bootrom,<uefi> <prefix>-<id>   (console → log file)
//
// Pause is SIGSTOP to the bhyve process, Resume SIGCONT. Destroy: bhyvectl --destroy, wait for bhyve to
// exit, destroy the tap, destroy the clone.
//
// Not done yet: processes and files of a VM (Command, Prepare and HostPath need the guest agent's client,
// so they return ErrNoAgent), guest address assignment (the tap's MAC is stable per VM for a DHCP server
// on the bridge), checkpoints (bhyvectl --suspend needs a BHYVE_SNAPSHOT kernel). Every system command goes
// through an executor.Executor and the bhyve process through a Launcher, so the command lines and their
// order are unit tested on any OS; nothing here has been run on FreeBSD by its tests.
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
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
)

// Name is the runtime's name in configuration and heartbeats.
const Name = "bhyve"

// ErrNoAgent is returned by the operations that need the guest agent, which this runtime does not reach yet.
var ErrNoAgent = errors.New("bhyve runtime: guest agent not implemented yet")

// Config configures the bhyve runtime.
type Config struct {
	// DataDir holds per-VM files (console logs) as DataDir/vms/<id>/.
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
	Exec        executor.Executor // default executor.Real
	Launcher    Launcher          // default ExecLauncher
	Logger      *slog.Logger
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
	vm := &VM{
		rt:      r,
		id:      spec.ID,
		name:    r.cfg.Prefix + "-" + spec.ID,
		dataset: r.cfg.VMDataset + "/" + spec.ID,
		dir:     filepath.Join(r.dir, spec.ID),
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

// Capabilities: a VM has its own root and is a security boundary.
func (r *Runtime) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{OwnRoot: true, Isolated: true}
}
