package bhyve

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Launcher starts the long-running bhyve process of a VM (the executor runs commands to completion).
type Launcher interface {
	// Launch starts argv with its standard output and error appended to the file console.
	Launch(argv []string, console string) (Process, error)
}

// Process is a running bhyve.
type Process interface {
	Pid() int
	Signal(sig syscall.Signal) error
	// Done is closed once the process has exited and been reaped.
	Done() <-chan struct{}
}

// ExecLauncher launches with os/exec.
type ExecLauncher struct{}

// Launch starts argv in its own process group, so signals to the worker's group do not reach it.
func (ExecLauncher) Launch(argv []string, console string) (Process, error) {
	f, err := os.OpenFile(console, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open console log: %w", err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(argv, " "), err)
	}
	p := &execProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

type execProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *execProcess) Pid() int              { return p.cmd.Process.Pid }
func (p *execProcess) Done() <-chan struct{} { return p.done }
func (p *execProcess) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal bhyve %d: %w", p.cmd.Process.Pid, err)
	}
	return nil
}
