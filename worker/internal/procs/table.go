// Package procs is the table of the processes one sandbox runs for envd's process service: it starts
// them (with pipes or a pseudo-terminal), fans their output out to any number of subscribers (the
// Start stream and later Connect streams), takes their input, signals and resizes them, remembers the
// last exited ones for late Connects, and kills them all when the sandbox ends.
//
// Each process leads its own process group (a PTY process its own session), so a signal reaches the
// command and the children it started, as a shell job would. The runtime's group kill on Destroy does
// not see those groups: Close kills them, and the caller closes the table before destroying the
// sandbox.
package procs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"sync"
	"time"

	"fleetbox.dev/schema"
)

// keepExited is how many exited processes the table remembers for Connect.
const keepExited = 100

// ChunkSize bounds the data of one event, as envd's 32 KiB reads do.
const ChunkSize = 32 << 10

// outputGrace is how long output is still read after a process exited: enough to drain its pipes,
// short enough that a background child holding them open does not hold back the end event.
const outputGrace = 50 * time.Millisecond

// Errors of the table's operations.
var (
	ErrNotFound = errors.New("process not found")
	ErrClosed   = errors.New("process table closed")
	ErrNoStdin  = errors.New("stdin not enabled or closed")
	ErrIsPTY    = errors.New("process has a terminal: use its pty input, or send Ctrl-D (0x04) to end it")
	ErrNotPTY   = errors.New("process has no terminal")
	ErrFinished = errors.New("process already finished")
)

// Options describe a process to start besides its command.
type Options struct {
	// Config is what the client asked for; List reports it.
	Config schema.ProcessConfig
	Tag    string
	// PTY, if set, runs the process on a new pseudo-terminal of this size.
	PTY *schema.PTYSize
	// Stdin keeps a pipe to the process's stdin; without it stdin is /dev/null.
	Stdin bool
	// Timeout, if positive, is the process's lifetime: it is killed then and ends with ReasonTimeout.
	Timeout time.Duration
}

// Table holds the processes of one sandbox. It is safe for concurrent use.
type Table struct {
	log *slog.Logger

	mu      sync.Mutex
	running map[uint32]*Process
	exited  []*Process // oldest first, at most keepExited
	closed  bool
	closing chan struct{} // closed by Close: sends to subscribers stop blocking
	wg      sync.WaitGroup
}

// New returns an empty table.
func New(log *slog.Logger) *Table {
	if log == nil {
		log = slog.Default()
	}
	return &Table{log: log, running: map[uint32]*Process{}, closing: make(chan struct{})}
}

// Start starts cmd, which the sandbox's runtime has prepared (path, environment, credentials, working
// directory), and returns the process with a first subscription that receives its start event before
// any output. Start sets cmd's stdio and makes the process lead its own process group (or session,
// with a terminal).
func (t *Table) Start(cmd *exec.Cmd, opts Options) (*Process, *Subscription, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nil, ErrClosed
	}
	p, err := start(t, cmd, opts)
	if err != nil {
		return nil, nil, err
	}
	sub := p.Subscribe()
	t.running[p.pid] = p
	if opts.Timeout > 0 {
		p.timer = time.AfterFunc(opts.Timeout, func() { p.kill(ReasonTimeout) })
	}
	t.wg.Add(1)
	go p.run()
	t.log.Debug("process started", "pid", p.pid, "cmd", opts.Config.Cmd, "pty", opts.PTY != nil)
	return p, sub, nil
}

// Find returns the process sel names: a running one, else one of the last exited ones (newest first).
func (t *Table) Find(sel schema.ProcessSelector) (*Process, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	match := func(p *Process) bool {
		if sel.PID != 0 {
			return p.pid == sel.PID
		}
		return sel.Tag != "" && p.tag == sel.Tag
	}
	if sel.PID != 0 {
		if p := t.running[sel.PID]; p != nil {
			return p, nil
		}
	} else {
		for _, p := range t.running {
			if match(p) {
				return p, nil
			}
		}
	}
	for i := len(t.exited) - 1; i >= 0; i-- {
		if match(t.exited[i]) {
			return t.exited[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, describe(sel))
}

// Running returns the running process sel names, or ErrNotFound.
func (t *Table) Running(sel schema.ProcessSelector) (*Process, error) {
	p, err := t.Find(sel)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.done:
		return nil, fmt.Errorf("%w: %s", ErrNotFound, describe(sel))
	default:
		return p, nil
	}
}

// List describes the running processes, by pid.
func (t *Table) List() []schema.ProcessInfo {
	t.mu.Lock()
	out := make([]schema.ProcessInfo, 0, len(t.running))
	for _, p := range t.running {
		out = append(out, schema.ProcessInfo{Config: p.config, PID: p.pid, Tag: p.tag})
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b schema.ProcessInfo) int { return int(a.PID) - int(b.PID) })
	return out
}

// Close refuses new processes, kills every running one (its whole process group) and waits until all
// are reaped and their output is drained, or ctx ends. Subscribers then receive ends with ReasonClosed,
// or see their channel closed without an end.
func (t *Table) Close(ctx context.Context) error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.closing)
	}
	ps := make([]*Process, 0, len(t.running))
	for _, p := range t.running {
		ps = append(ps, p)
	}
	t.mu.Unlock()
	for _, p := range ps {
		p.kill(ReasonClosed)
	}
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close process table: %d processes not reaped: %w", len(ps), ctx.Err())
	}
}

// retire moves an exited process from the running set to the exited ring.
func (t *Table) retire(p *Process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running[p.pid] == p {
		delete(t.running, p.pid)
	}
	t.exited = append(t.exited, p)
	if len(t.exited) > keepExited {
		t.exited = slices.Delete(t.exited, 0, len(t.exited)-keepExited)
	}
}

func describe(sel schema.ProcessSelector) string {
	if sel.PID != 0 {
		return fmt.Sprintf("pid %d", sel.PID)
	}
	return fmt.Sprintf("tag %q", sel.Tag)
}
