package bhyve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"fleetbox.dev/worker/internal/agent"
	"fleetbox.dev/worker/internal/runtime"
)

// VM is one sandbox of the bhyve runtime.
type VM struct {
	rt      *Runtime
	id      string
	name    string // vmm instance and tap description: <prefix>-<id>
	dataset string
	dir     string   // DataDir/vms/<id>: console log, home
	home    string   // dir/home, shared with the guest as /home/user
	env     []string // the guest's environment of every process (Env)
	addr    string   // the guest agent's host:port
	log     *slog.Logger

	// lifeline: every agent client gets the read end; Destroy closes the write end, and the clients,
	// reading end of file, end their connections and exit. A VM that is gone answers nothing, so
	// without it a client would wait on its connection forever.
	lifeR, lifeW *os.File

	mu        sync.Mutex
	tap       string
	proc      Process
	destroyed bool
	removed   bool
}

var (
	_ runtime.Sandbox    = (*VM)(nil)
	_ runtime.Pauser     = (*VM)(nil)
	_ runtime.FileOwner  = (*VM)(nil)
	_ runtime.OwnerNamer = (*VM)(nil)
)

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
	if err := vm.makeDirs(); err != nil {
		return errors.Join(err, r.undo(ctx, "", tap, vm.dataset, vm.dir))
	}
	if vm.lifeR, vm.lifeW, err = os.Pipe(); err != nil {
		return errors.Join(fmt.Errorf("make lifeline: %w", err), r.undo(ctx, "", tap, vm.dataset, vm.dir))
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
		MAC: macFor(vm.name), BootROM: r.cfg.BootROM, Home: vm.home,
	})
	began := time.Now()
	proc, err := r.launch.Launch(argv, vm.ConsoleLog())
	if err != nil {
		vm.closeLifeline()
		// bhyve may have created the vmm instance before failing.
		return errors.Join(fmt.Errorf("start bhyve: %w", err), r.undo(ctx, vm.name, tap, vm.dataset, vm.dir))
	}
	vm.proc = proc
	if r.cfg.AgentAddress != nil {
		vm.addr = r.cfg.AgentAddress(vm.name)
	} else {
		vm.addr = agentAddr(vm.name, r.cfg.Bridge, r.cfg.AgentPort)
	}
	if err := vm.waitAgent(ctx); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second+r.cfg.StopTimeout)
		defer cancel()
		return errors.Join(err, vm.Destroy(dctx))
	}
	vm.log.Info("vm ready", "boot", time.Since(began).Round(time.Millisecond), "agent", vm.addr)
	return nil
}

// makeDirs makes the VM's directory and the home it shares, owned by the sandbox user (when the worker
// may give files away, as root).
func (vm *VM) makeDirs() error {
	// Others may pass through (not list) to the home, as to any home.
	if err := os.MkdirAll(vm.rt.dir, 0o711); err != nil {
		return fmt.Errorf("make vm directory: %w", err)
	}
	if err := os.Mkdir(vm.dir, 0o711); err != nil {
		return fmt.Errorf("make vm directory: %w", err)
	}
	if err := os.Mkdir(vm.home, 0o755); err != nil {
		return fmt.Errorf("make home: %w", err)
	}
	if os.Geteuid() == 0 {
		uid, gid := vm.rt.user()
		if err := os.Chown(vm.home, uid, gid); err != nil {
			return fmt.Errorf("make home: %w", err)
		}
	}
	return nil
}

// waitAgent probes the guest agent until it answers, bhyve exits, Config.BootTimeout passes or ctx ends.
func (vm *VM) waitAgent(ctx context.Context) error {
	timeout := vm.rt.cfg.BootTimeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 20 * time.Millisecond
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err := agent.Probe(pctx, vm.addr)
		pcancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, agent.ErrProtocol):
			// Something answers, and it is not an agent this worker can talk to: waiting will not help.
			return fmt.Errorf("guest agent: %w", err)
		}
		select {
		case <-vm.proc.Done():
			return fmt.Errorf("bhyve exited while the guest booted (console: %s); last probe: %w", vm.ConsoleLog(), err)
		case <-ctx.Done():
			return fmt.Errorf("guest agent at %s did not answer within %v (console: %s): %w", vm.addr, timeout, vm.ConsoleLog(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

func (vm *VM) closeLifeline() {
	if vm.lifeW != nil {
		vm.lifeW.Close()
	}
	if vm.lifeR != nil {
		vm.lifeR.Close()
	}
}

// ID returns the sandbox id.
func (vm *VM) ID() string { return vm.id }

// Tap returns the VM's tap interface.
func (vm *VM) Tap() string { return vm.tap }

// AgentAddr returns the guest agent's address (host:port).
func (vm *VM) AgentAddr() string { return vm.addr }

// ConsoleLog returns the file that holds the VM's serial console output.
func (vm *VM) ConsoleLog() string { return filepath.Join(vm.dir, "console.log") }

// Pause stops the bhyve process (SIGSTOP): the guest's vCPUs stop, its memory stays resident. The agent
// clients' connections stay open (they use no keepalive) and continue after Resume.
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

// Destroy ends the agent clients (their lifeline closes), destroys the vmm instance (bhyve exits), waits
// for bhyve, then destroys the tap, the disk and the VM's directory with the shared home. It is
// idempotent; after a failure, calling it again retries every step.
func (vm *VM) Destroy(ctx context.Context) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.removed {
		return nil
	}
	if !vm.destroyed {
		vm.destroyed = true
		vm.lifeW.Close()
	}
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
	vm.lifeR.Close()
	vm.removed = true
	return nil
}
