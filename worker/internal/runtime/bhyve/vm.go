package bhyve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"fleetbox.dev/worker/internal/runtime"
)

// VM is one sandbox of the bhyve runtime.
type VM struct {
	rt      *Runtime
	id      string
	name    string // vmm instance and tap description: <prefix>-<id>
	dataset string
	dir     string
	log     *slog.Logger

	mu        sync.Mutex
	tap       string
	proc      Process
	destroyed bool
	removed   bool
}

var _ runtime.Sandbox = (*VM)(nil)

func (vm *VM) create(ctx context.Context, spec runtime.Spec) error {
	r := vm.rt
	snap := r.cfg.ImageDataset + "/" + spec.TemplateID + "@" + r.cfg.ImageSnapshot
	if _, err := r.run(ctx, zvolCloneCmd(snap, vm.dataset)); err != nil {
		if strings.Contains(exitStderr(err), "already exists") {
			return fmt.Errorf("clone %s: %w", snap, runtime.ErrExists)
		}
		return fmt.Errorf("clone %s: %w", snap, err)
	}
	out, err := r.run(ctx, tapCreateCmd())
	if err != nil {
		return errors.Join(fmt.Errorf("create tap: %w", err), r.undo(ctx, "", "", vm.dataset, ""))
	}
	tap, err := parseTap(out)
	if err != nil {
		return errors.Join(fmt.Errorf("create tap: %w", err), r.undo(ctx, "", "", vm.dataset, ""))
	}
	vm.tap = tap
	for _, argv := range tapSetupCmds(tap, r.cfg.Bridge, vm.name) {
		if _, err := r.run(ctx, argv); err != nil {
			return errors.Join(fmt.Errorf("set up %s: %w", tap, err), r.undo(ctx, "", tap, vm.dataset, ""))
		}
	}
	if err := os.MkdirAll(vm.dir, 0o750); err != nil {
		return errors.Join(fmt.Errorf("make vm directory: %w", err), r.undo(ctx, "", tap, vm.dataset, ""))
	}
	cpus, mem := spec.CPUCount, spec.MemoryMB
	if cpus <= 0 {
		cpus = 1
	}
	if mem <= 0 {
		mem = 512
	}
	argv := bhyveCmd(vmParams{
		Name: vm.name, CPUs: cpus, MemMB: mem, Disk: "/dev/zvol/" + vm.dataset, Tap: tap,
		MAC: macFor(vm.name), BootROM: r.cfg.BootROM,
	})
	proc, err := r.launch.Launch(argv, vm.ConsoleLog())
	if err != nil {
		// bhyve may have created the vmm instance before failing.
		return errors.Join(fmt.Errorf("start bhyve: %w", err), r.undo(ctx, vm.name, tap, vm.dataset, vm.dir))
	}
	vm.proc = proc
	return nil
}

// ID returns the sandbox id.
func (vm *VM) ID() string { return vm.id }

// Tap returns the VM's tap interface.
func (vm *VM) Tap() string { return vm.tap }

// ConsoleLog returns the file that holds the VM's serial console output.
func (vm *VM) ConsoleLog() string { return filepath.Join(vm.dir, "console.log") }

// Env returns nothing yet: the guest's environment is the agent's.
func (vm *VM) Env() []string { return nil }

// HostPath is not available: a VM's files are reached through the guest agent.
func (vm *VM) HostPath(string) (string, error) {
	return "", fmt.Errorf("host path in %s: %w", vm.id, ErrNoAgent)
}

// Command is not available: a VM's processes are started through the guest agent.
func (vm *VM) Command(context.Context, []string, string, map[string]string) (*exec.Cmd, error) {
	return nil, fmt.Errorf("command in %s: %w", vm.id, ErrNoAgent)
}

// Prepare is not available: no host process runs inside a VM.
func (vm *VM) Prepare(*exec.Cmd) error {
	return fmt.Errorf("prepare command in %s: %w", vm.id, ErrNoAgent)
}

// Pause stops the bhyve process (SIGSTOP): the guest's vCPUs stop, its memory stays resident.
func (vm *VM) Pause(context.Context) error { return vm.signal("pause", syscall.SIGSTOP) }

// Resume continues the bhyve process (SIGCONT).
func (vm *VM) Resume(context.Context) error { return vm.signal("resume", syscall.SIGCONT) }

func (vm *VM) signal(what string, sig syscall.Signal) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.destroyed {
		return fmt.Errorf("%s %s: %w", what, vm.id, runtime.ErrDestroyed)
	}
	if err := vm.proc.Signal(sig); err != nil {
		return fmt.Errorf("%s %s: %w", what, vm.id, err)
	}
	return nil
}

// Destroy destroys the vmm instance (bhyve exits), waits for bhyve, then destroys the tap, the disk and the
// VM's directory. It is idempotent; after a failure, calling it again retries every step.
func (vm *VM) Destroy(ctx context.Context) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.removed {
		return nil
	}
	vm.destroyed = true
	r := vm.rt
	var errs []error
	if _, err := r.run(ctx, bhyvectlDestroyCmd(vm.name)); err != nil && !gone(err) {
		errs = append(errs, fmt.Errorf("destroy vmm instance: %w", err))
	}
	// A stopped bhyve must run to notice its VM is gone.
	_ = vm.proc.Signal(syscall.SIGCONT)
	select {
	case <-vm.proc.Done():
	case <-time.After(r.cfg.StopTimeout):
		_ = vm.proc.Signal(syscall.SIGKILL)
		select {
		case <-vm.proc.Done():
		case <-ctx.Done():
			return fmt.Errorf("destroy %s: wait for bhyve: %w", vm.id, ctx.Err())
		}
	case <-ctx.Done():
		return fmt.Errorf("destroy %s: wait for bhyve: %w", vm.id, ctx.Err())
	}
	if err := r.teardown(ctx, "", vm.tap, vm.dataset, vm.dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("destroy %s: %w", vm.id, err)
	}
	vm.removed = true
	return nil
}
