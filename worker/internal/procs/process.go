package procs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"fleetbox.dev/schema"
)

// Process is one process of a Table.
type Process struct {
	table  *Table
	pid    uint32
	tag    string
	config schema.ProcessConfig
	cmd    *exec.Cmd
	outs   []output
	tty    *os.File // the terminal's controlling side (the pty master), nil without a terminal
	timer  *time.Timer
	done   chan struct{} // closed once the process is reaped, its output drained and its end delivered

	stdinMu sync.Mutex
	stdin   *os.File // write end of the stdin pipe, nil without one or after CloseStdin

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	reaped bool   // Wait returned: the pid may be reused, never signal it again
	reason string // why the table killed it
	end    *End
}

type output struct {
	f      *os.File
	stream string
}

// start sets up cmd's stdio and process attributes and starts it.
func start(t *Table, cmd *exec.Cmd, opts Options) (p *Process, err error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	p = &Process{table: t, tag: opts.Tag, config: opts.Config, cmd: cmd, done: make(chan struct{}), subs: map[*Subscription]struct{}{}}
	var childEnds []*os.File // closed in the parent once the child has them
	defer func() {
		for _, f := range childEnds {
			_ = f.Close()
		}
		if err != nil {
			for _, o := range p.outs {
				_ = o.f.Close()
			}
			if p.stdin != nil {
				_ = p.stdin.Close()
			}
		}
	}()
	if opts.PTY != nil {
		master, tty, err := openPTY(*opts.PTY)
		if err != nil {
			return nil, err
		}
		childEnds = append(childEnds, tty)
		p.tty = master
		p.outs = []output{{master, PTY}}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		ownSession(cmd.SysProcAttr)
	} else {
		for _, stream := range []string{Stdout, Stderr} {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, fmt.Errorf("%s pipe: %w", stream, err)
			}
			childEnds = append(childEnds, w)
			p.outs = append(p.outs, output{r, stream})
			if stream == Stdout {
				cmd.Stdout = w
			} else {
				cmd.Stderr = w
			}
		}
		cmd.Stdin = nil // /dev/null
		if opts.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, fmt.Errorf("stdin pipe: %w", err)
			}
			childEnds = append(childEnds, r)
			p.stdin = w
			cmd.Stdin = r
		}
		ownGroup(cmd.SysProcAttr)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.Config.Cmd, err)
	}
	p.pid = uint32(cmd.Process.Pid)
	return p, nil
}

// run reads the process's output until it ends, reaps it and delivers its end.
func (p *Process) run() {
	defer p.table.wg.Done()
	var pumps sync.WaitGroup
	for _, o := range p.outs {
		pumps.Go(func() { p.pump(o) })
	}
	err := p.cmd.Wait()
	p.mu.Lock()
	p.reaped = true
	reason := p.reason
	p.mu.Unlock()
	if p.timer != nil {
		p.timer.Stop()
	}
	// What is still in the pipes is read; a background child that keeps them open is cut off. (Where
	// the file has no deadlines, the pump waits for that child to end or be killed with the sandbox.)
	for _, o := range p.outs {
		_ = o.f.SetReadDeadline(time.Now().Add(outputGrace))
	}
	pumps.Wait()
	for _, o := range p.outs {
		_ = o.f.Close()
	}
	p.stdinMu.Lock()
	if p.stdin != nil {
		_ = p.stdin.Close()
		p.stdin = nil
	}
	p.stdinMu.Unlock()

	st := p.cmd.ProcessState
	end := &End{ExitCode: int32(st.ExitCode()), Exited: st.Exited(), Status: st.String(), Reason: reason}
	if err != nil {
		end.Error = err.Error()
	}
	// Retired before its subscribers hear the end: a client that saw the end no longer finds it running.
	p.table.retire(p)
	p.finish(end)
	close(p.done)
	p.table.log.Debug("process ended", "pid", p.pid, "status", end.Status, "reason", reason)
}

// pump broadcasts one output of the process in chunks of at most ChunkSize.
func (p *Process) pump(o output) {
	buf := make([]byte, ChunkSize)
	for {
		n, err := o.f.Read(buf)
		if n > 0 {
			p.broadcast(Event{Kind: KindData, PID: p.pid, Stream: o.stream, Data: bytes.Clone(buf[:n])})
		}
		if err != nil {
			// io.EOF for pipes, EIO for a terminal whose last user closed it, a deadline after exit.
			return
		}
	}
}

// PID returns the process id.
func (p *Process) PID() uint32 { return p.pid }

// Done is closed once the process has ended and its end event has been delivered.
func (p *Process) Done() <-chan struct{} { return p.done }

// End returns how the process ended, or nil while it runs.
func (p *Process) End() *End {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.end
}

// Signal sends sig to the process's group (or session leader's group, with a terminal).
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return ErrFinished
	}
	if err := signalGroup(int(p.pid), sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return ErrFinished
		}
		return fmt.Errorf("signal process %d: %w", p.pid, err)
	}
	return nil
}

// kill kills the process's group for reason, unless it already ended.
func (p *Process) kill(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return
	}
	if p.reason == "" {
		p.reason = reason
	}
	_ = signalGroup(int(p.pid), syscall.SIGKILL)
}

// WriteStdin writes to the process's stdin pipe, waiting at most until deadline (zero: no bound) for
// the process to read.
func (p *Process) WriteStdin(b []byte, deadline time.Time) error {
	if p.tty != nil {
		return ErrIsPTY
	}
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin == nil {
		return ErrNoStdin
	}
	_ = p.stdin.SetWriteDeadline(deadline)
	if _, err := p.stdin.Write(b); err != nil {
		return fmt.Errorf("write stdin of process %d: %w", p.pid, err)
	}
	return nil
}

// CloseStdin closes the stdin pipe, so the process reads end of file. Without a pipe it does nothing.
func (p *Process) CloseStdin() error {
	if p.tty != nil {
		return ErrIsPTY
	}
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin == nil {
		return nil
	}
	err := p.stdin.Close()
	p.stdin = nil
	if err != nil {
		return fmt.Errorf("close stdin of process %d: %w", p.pid, err)
	}
	return nil
}

// WritePTY writes to the process's terminal, as keystrokes, waiting at most until deadline.
func (p *Process) WritePTY(b []byte, deadline time.Time) error {
	if p.tty == nil {
		return ErrNotPTY
	}
	select {
	case <-p.done:
		return ErrFinished
	default:
	}
	_ = p.tty.SetWriteDeadline(deadline)
	if _, err := p.tty.Write(b); err != nil {
		return fmt.Errorf("write terminal of process %d: %w", p.pid, err)
	}
	return nil
}

// Resize changes the size of the process's terminal.
func (p *Process) Resize(size schema.PTYSize) error {
	if p.tty == nil {
		return ErrNotPTY
	}
	select {
	case <-p.done:
		return ErrFinished
	default:
	}
	if err := setSize(p.tty, size); err != nil {
		return fmt.Errorf("resize terminal of process %d: %w", p.pid, err)
	}
	return nil
}
