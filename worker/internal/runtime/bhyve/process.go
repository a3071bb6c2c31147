package bhyve

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"fleetbox.dev/worker/internal/agent"
	"fleetbox.dev/worker/internal/runtime"
)

// Command builds a process that runs in the VM: an agent client (Config.AgentClient agent-exec) that has
// the guest agent run argv in cwd (a guest path; "" is /home/user, a relative one is taken from there)
// with the VM's environment plus env. argv[0] is looked up on the guest's PATH by the agent. The
// client's standard streams are the remote process's, signals to it are forwarded (SIGINT, SIGTERM,
// SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2), and it exits with the remote status (128 + n for signal n).
// Cancelling ctx kills the client, which makes the agent kill the remote process group.
func (vm *VM) Command(ctx context.Context, argv []string, cwd string, env map[string]string) (*exec.Cmd, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("command: empty argv")
	}
	dir, err := guestDir(cwd)
	if err != nil {
		return nil, fmt.Errorf("command cwd: %w", err)
	}
	cmd := exec.CommandContext(ctx, vm.rt.cfg.AgentClient)
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.destroyed {
		return nil, fmt.Errorf("command in %s: %w", vm.id, runtime.ErrDestroyed)
	}
	vm.wrapLocked(cmd, argv, dir, runtime.MergeEnv(vm.env, env))
	return cmd, nil
}

// Prepare turns cmd, built for the guest (its Path or Args[0], Args, Dir and Env are the guest's), into
// an agent client that runs it in the VM, as Command does. An Args[0] without a slash is looked up on
// the guest's PATH (cmd.Path, the host's lookup of it, is ignored); otherwise cmd.Path is the program.
// An empty Dir is /home/user, a nil Env the VM's. The client runs as the sandbox user unless cmd already
// has credentials: the remote process runs as the client does (see agent.ExecMain), so a caller picks
// the guest user by setting cmd.SysProcAttr.Credential, before or after Prepare. ExtraFiles are kept
// (they reach the client, not the guest). Preparing a prepared command does nothing.
func (vm *VM) Prepare(cmd *exec.Cmd) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.destroyed {
		return fmt.Errorf("prepare command in %s: %w", vm.id, runtime.ErrDestroyed)
	}
	if cmd.Path == vm.rt.cfg.AgentClient && len(cmd.Args) > 1 && cmd.Args[1] == "agent-exec" {
		return nil
	}
	argv := slices.Clone(cmd.Args)
	if len(argv) == 0 {
		argv = []string{cmd.Path}
	}
	if strings.Contains(argv[0], "/") {
		argv[0] = cmd.Path
	}
	if argv[0] == "" {
		return errors.New("prepare command: no program")
	}
	dir, err := guestDir(cmd.Dir)
	if err != nil {
		return fmt.Errorf("prepare command: %w", err)
	}
	env := cmd.Env
	if env == nil {
		env = vm.env
	}
	cmd.Err = nil // a failed lookup of argv[0] on the host's PATH does not matter
	vm.wrapLocked(cmd, argv, dir, env)
	return nil
}

// wrapLocked makes cmd the agent client of argv in dir with env. vm.mu is held.
func (vm *VM) wrapLocked(cmd *exec.Cmd, argv []string, dir string, env []string) {
	client := vm.rt.cfg.AgentClient
	lifeFD := 3 + len(cmd.ExtraFiles)
	args := []string{client, "agent-exec", "-addr", vm.addr, "-dir", dir, "-lifeline-fd", strconv.Itoa(lifeFD), "--"}
	cmd.Path = client
	cmd.Args = append(args, argv...)
	cmd.Dir = "" // the guest directory is the agent's business
	// The guest environment travels in one variable: none of it may act on the client, a host process.
	cmd.Env = []string{agent.ExecEnvVar + "=" + agent.EncodeEnv(env)}
	cmd.ExtraFiles = append(cmd.ExtraFiles, vm.lifeR)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if !cmd.SysProcAttr.Setsid && !cmd.SysProcAttr.Setpgid {
		cmd.SysProcAttr.Setpgid = true // signals to the client's group reach the client alone
	}
	if cmd.SysProcAttr.Credential == nil {
		uid, gid := vm.rt.user()
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
}

// guestDir is the absolute guest path of a working directory ("" is /home/user, relative paths start
// there); ".." above "/" is refused.
func guestDir(cwd string) (string, error) {
	parts, err := runtime.PathComponents(cwd)
	if err != nil {
		return "", fmt.Errorf("%q: %w", cwd, err)
	}
	return path.Join(append([]string{"/"}, parts...)...), nil
}
