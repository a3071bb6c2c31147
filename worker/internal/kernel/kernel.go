// Package kernel runs the in-sandbox Python code kernel (kernel.py) and drives it
// over plain pipes: one JSON command per line in, one NDJSON event per line out.
//
// A Kernel keeps Python state between executions, like a Jupyter kernel. Execute
// streams E2B's /execute NDJSON lines (number_of_executions, stdout, stderr,
// result, error, keepalive, end_of_execution) to a callback, one execution at a
// time.
package kernel

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Source is kernel.py. Start passes it to the interpreter with -c unless Config.ModuleDir holds a
// copy written by WriteModule.
//
//go:embed kernel.py
var Source []byte

const moduleName = "fleetbox_kernel"

// WriteModule writes the kernel into dir as a module for Config.ModuleDir (unless an identical copy is
// there) and compiles it once, so every kernel start imports the cached bytecode.
func WriteModule(ctx context.Context, python, dir string) error {
	path := filepath.Join(dir, moduleName+".py")
	if cur, err := os.ReadFile(path); err != nil || !bytes.Equal(cur, Source) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("kernel module dir: %w", err)
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, Source, 0o644); err != nil {
			return fmt.Errorf("write kernel module: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("write kernel module: %w", err)
		}
	}
	out, err := exec.CommandContext(ctx, python, "-I", "-m", "py_compile", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("compile kernel module: %v: %s", err, out)
	}
	return nil
}

// ErrKernelDied is wrapped by errors from a kernel whose process has exited.
var ErrKernelDied = errors.New("kernel died")

// DefaultKeepaliveInterval is used when Config.KeepaliveInterval is zero.
const DefaultKeepaliveInterval = 5 * time.Second

// Config says how to start one kernel process.
type Config struct {
	Python string // interpreter path, e.g. /usr/bin/python3 (never assume the pyenv shim)
	// ModuleDir is a directory, as the interpreter sees it, where WriteModule put the kernel as
	// module fleetbox_kernel: importing it lets Python cache the compiled kernel (a few ms per start).
	// If empty, Source is passed with -c, which needs no file at all.
	ModuleDir string
	// Zygote, if set, forks the kernel from a fork server instead of starting an interpreter, when
	// the prepared command allows it (see Zygote); otherwise, or if the fork fails, Start execs.
	Zygote *Zygote
	Dir    string   // working directory
	Env    []string // full environment (KEY=VALUE); nil means the worker's environment
	// KeepaliveInterval is the idle time after which Execute emits {"type":"keepalive"};
	// default 5s.
	KeepaliveInterval time.Duration
	// Prepare, if set, is called on the *exec.Cmd before Start, so a runtime can set
	// SysProcAttr (process group, jail id, credentials) or wrap the command (Path/Args).
	// It must not touch Stdin/Stdout/Stderr.
	Prepare func(*exec.Cmd) error
	Logger  *slog.Logger
}

// Kernel is one running kernel process. Its methods are safe for concurrent use.
type Kernel struct {
	proc      process
	pid       int
	group     bool // the kernel leads its own process group: signal the group
	log       *slog.Logger
	keepalive time.Duration
	stdin     *os.File
	stderr    *tailWriter

	lines      chan []byte   // event lines, closed when the event pipe ends
	readerDone chan struct{} // closed when the line reader has returned
	turn       chan struct{} // holds a token while an operation owns the kernel

	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed after the process has exited and been reaped
	waitErr   error         // exit status; written before done is closed

	mu    sync.Mutex
	fatal string // last {"type":"fatal"} message from the kernel
}

// Start starts a kernel process and returns after it reported ready.
// ctx bounds the start-up only, not the life of the kernel.
func Start(ctx context.Context, cfg Config) (*Kernel, error) {
	if cfg.Python == "" {
		return nil, errors.New("kernel: start: Config.Python is empty")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	args := []string{"-u", "-I"}
	if cfg.ModuleDir != "" {
		args = append(args, "-c", fmt.Sprintf("import sys; sys.path.insert(0, %q); import %s as k; del sys.path[0]; k.run()", cfg.ModuleDir, moduleName))
	} else {
		args = append(args, "-c", string(Source))
	}
	cmd := exec.Command(cfg.Python, args...)
	cmd.Dir = cfg.Dir
	cmd.Env = cfg.Env
	cmd.WaitDelay = time.Second

	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("kernel: start: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("kernel: start: %w", err)
	}
	closeAll := func() {
		for _, f := range []*os.File{inR, inW, outR, outW} {
			f.Close()
		}
	}
	stderr := &tailWriter{log: log, max: 8 << 10}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, stderr
	if cfg.Prepare != nil {
		if err := cfg.Prepare(cmd); err != nil {
			closeAll()
			return nil, fmt.Errorf("kernel: start: prepare: %w", err)
		}
	}
	began := time.Now()
	proc, pid, err := launch(ctx, cfg, cmd, stderr, log)
	if err != nil {
		closeAll()
		return nil, err
	}
	inR.Close()
	outW.Close()

	pgid, err := syscall.Getpgid(pid)
	k := &Kernel{
		proc:       proc,
		pid:        pid,
		group:      err == nil && pgid == pid,
		log:        log.With("kernel_pid", pid),
		keepalive:  cfg.KeepaliveInterval,
		stdin:      inW,
		stderr:     stderr,
		lines:      make(chan []byte, 16),
		readerDone: make(chan struct{}),
		turn:       make(chan struct{}, 1),
		closing:    make(chan struct{}),
		done:       make(chan struct{}),
	}
	if k.keepalive <= 0 {
		k.keepalive = DefaultKeepaliveInterval
	}
	go k.read(outR)
	go k.wait(outR)

	select {
	case line, ok := <-k.lines:
		if !ok {
			err := k.diedError()
			k.Close()
			return nil, fmt.Errorf("kernel: start: %w", err)
		}
		var ready struct {
			Type string `json:"type"`
			Pid  int    `json:"pid"`
		}
		if err := json.Unmarshal(line, &ready); err != nil || ready.Type != "ready" {
			k.Close()
			return nil, fmt.Errorf("kernel: start: expected ready event, got %.200q", line)
		}
		if ready.Pid != pid {
			k.log.Debug("kernel reports a different pid (a wrapped command, such as a VM's agent client)", "reported_pid", ready.Pid)
		}
	case <-ctx.Done():
		k.Close()
		return nil, fmt.Errorf("kernel: start: waiting for ready: %w", ctx.Err())
	}
	k.log.Debug("kernel ready", "duration", time.Since(began), "process_group", k.group)
	return k, nil
}

// launch starts the prepared command: forked by the zygote when it can serve it, executed otherwise.
func launch(ctx context.Context, cfg Config, cmd *exec.Cmd, stderr *tailWriter, log *slog.Logger) (process, int, error) {
	if z := cfg.Zygote; z != nil {
		if pgid, ok := forkable(cmd, cfg.Python); ok {
			p, pid, err := forkKernel(ctx, z, cmd, pgid, stderr)
			if err == nil {
				return p, pid, nil
			}
			log.Warn("zygote fork failed; starting a fresh interpreter", "error", err)
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("kernel: start %s: %w", cfg.Python, err)
	}
	return execProcess{cmd}, cmd.Process.Pid, nil
}

// forkKernel has the zygote fork a kernel with cmd's standard files, directory and environment.
func forkKernel(ctx context.Context, z *Zygote, cmd *exec.Cmd, pgid int, stderr *tailWriter) (process, int, error) {
	stdin, ok1 := cmd.Stdin.(*os.File)
	stdout, ok2 := cmd.Stdout.(*os.File)
	if !ok1 || !ok2 {
		return nil, 0, errZygoteUnusable
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, 0, err
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	envMap := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
	dir := cmd.Dir
	if dir == "" {
		dir = "/"
	}
	pid, err := z.spawn(ctx, spawnRequest{Cwd: dir, Env: envMap, Pgid: pgid}, stdin, stdout, errW)
	errW.Close()
	if err != nil {
		errR.Close()
		return nil, 0, err
	}
	go func() {
		_, _ = io.Copy(stderr, errR)
		errR.Close()
	}()
	return forkedProcess{pid}, pid, nil
}

// process is a running kernel: a child we executed, or one the zygote forked.
type process interface {
	signal(sig syscall.Signal) error
	// wait returns once the process has exited; eof is closed when its event pipe reached EOF.
	wait(eof <-chan struct{}) error
}

type execProcess struct{ cmd *exec.Cmd }

func (p execProcess) signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }
func (p execProcess) wait(<-chan struct{}) error      { return p.cmd.Wait() }

// Pid returns the process id of the kernel process.
func (k *Kernel) Pid() int { return k.pid }

// Done returns a channel that is closed when the kernel process has exited.
func (k *Kernel) Done() <-chan struct{} { return k.done }

// Configure sets environment variables (for all later executions) and the working
// directory, e.g. when a pre-warmed kernel is handed to a context. It waits its turn
// like Execute. An empty cwd leaves the directory unchanged.
func (k *Kernel) Configure(ctx context.Context, env map[string]string, cwd string) error {
	if err := k.acquire(ctx); err != nil {
		return fmt.Errorf("kernel: configure: %w", err)
	}
	if err := k.send(command{Type: "configure", Env: env, Cwd: cwd}); err != nil {
		k.release()
		return fmt.Errorf("kernel: configure: %w", err)
	}
	// The reply is awaited in a goroutine that keeps the turn until the kernel has
	// answered, so a cancelled Configure cannot leave its reply for the next caller.
	reply := make(chan error, 1)
	go func() {
		defer k.release()
		for line := range k.lines {
			switch string(lineType(line)) {
			case "configured":
				var r struct {
					Error string `json:"error"`
				}
				if err := json.Unmarshal(line, &r); err != nil {
					reply <- fmt.Errorf("kernel: configure: bad reply: %w", err)
				} else if r.Error != "" {
					reply <- fmt.Errorf("kernel: configure: %s", r.Error)
				} else {
					reply <- nil
				}
				return
			case "fatal":
				k.noteFatal(line)
			default:
				k.log.Warn("kernel: unexpected line while configuring", "line", truncate(line))
			}
		}
		reply <- fmt.Errorf("kernel: configure: %w", k.diedError())
	}()
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("kernel: configure: %w", ctx.Err())
	}
}

// Execute runs code and calls emit once per NDJSON line (including the final
// end_of_execution line; each line without the trailing newline), in order, from the
// calling goroutine. It waits its turn if another execution is running (respecting ctx).
//
// If ctx is cancelled during the execution it interrupts the kernel (SIGINT), keeps
// reading (and emitting, ignoring emit errors) until end_of_execution, and returns
// ctx.Err(). If emit returns an error it interrupts the execution the same way, stops
// calling emit, and returns that error. If the kernel process dies mid-execution it
// emits an error line {"type":"error","name":"KernelDied",...} and end_of_execution and
// returns an error wrapping ErrKernelDied. If the kernel was already dead (or closed)
// before the code was sent, it returns an error wrapping ErrKernelDied without calling
// emit. Keepalive lines are emitted after KeepaliveInterval without other output.
//
// If the code ignores SIGINT, Execute keeps waiting after cancellation: call Close to
// kill the kernel, which ends Execute.
func (k *Kernel) Execute(ctx context.Context, code string, envVars map[string]string, emit func(line []byte) error) error {
	if err := k.acquire(ctx); err != nil {
		return fmt.Errorf("kernel: execute: %w", err)
	}
	defer k.release()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kernel: execute: %w", err)
	}
	if err := k.send(command{Type: "execute", Code: code, EnvVars: envVars}); err != nil {
		return fmt.Errorf("kernel: execute: %w", err)
	}
	return k.stream(ctx, emit)
}

// stream relays the lines of one execution; see Execute.
func (k *Kernel) stream(ctx context.Context, emit func([]byte) error) error {
	var (
		started   bool // saw number_of_executions: the kernel is executing
		wantIntr  bool
		sentIntr  bool
		cancelled bool
		emitting  = true
		emitErr   error
	)
	out := func(line []byte) {
		if !emitting {
			return
		}
		if err := emit(line); err != nil {
			emitting = false
			if !cancelled {
				emitErr, wantIntr = err, true
			}
		}
	}
	keepalive := time.NewTimer(k.keepalive)
	defer keepalive.Stop()
	ctxDone := ctx.Done()
	for {
		// A SIGINT before the kernel has read the command would be ignored as "idle",
		// so the interrupt waits for the first line of the execution.
		if wantIntr && started && !sentIntr {
			sentIntr = true
			if err := k.Interrupt(); err != nil {
				k.log.Warn("kernel: interrupt failed", "err", err)
			}
		}
		select {
		case line, ok := <-k.lines:
			if !ok {
				err := k.diedError()
				out(errorLine("KernelDied", err.Error()))
				out(endLine)
				return fmt.Errorf("kernel: execute: %w", err)
			}
			switch string(lineType(line)) {
			case "number_of_executions":
				started = true
			case "end_of_execution":
				out(line)
				switch {
				case emitErr != nil:
					return emitErr
				case cancelled:
					return fmt.Errorf("kernel: execute: %w", ctx.Err())
				}
				return nil
			case "fatal":
				k.noteFatal(line)
				continue
			case "ready", "configured":
				k.log.Warn("kernel: unexpected line during execution", "line", truncate(line))
				continue
			}
			out(line)
			keepalive.Reset(k.keepalive)
		case <-keepalive.C:
			out(keepaliveLine)
			keepalive.Reset(k.keepalive)
		case <-ctxDone:
			ctxDone, cancelled, wantIntr = nil, true, true
		}
	}
}

// Interrupt sends SIGINT to the kernel (to its process group if it leads one, so
// that child processes are interrupted too, as in Jupyter). While the kernel is idle
// the signal is ignored.
func (k *Kernel) Interrupt() error {
	select {
	case <-k.done:
		return fmt.Errorf("kernel: interrupt: %w", ErrKernelDied)
	default:
	}
	var err error
	if k.group {
		err = syscall.Kill(-k.pid, syscall.SIGINT)
	} else {
		err = k.proc.signal(syscall.SIGINT)
	}
	if err != nil {
		return fmt.Errorf("kernel: interrupt: %w", err)
	}
	return nil
}

// Close kills the kernel process (SIGKILL; its whole process group if it leads one)
// and reaps it. It is idempotent and ends any running Execute.
func (k *Kernel) Close() error {
	k.closeOnce.Do(func() {
		close(k.closing)
		if k.group {
			_ = syscall.Kill(-k.pid, syscall.SIGKILL)
		}
		if err := k.proc.signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH) {
			k.closeErr = fmt.Errorf("kernel: close: %w", err)
		}
		k.stdin.Close()
	})
	<-k.done
	return k.closeErr
}

func (k *Kernel) acquire(ctx context.Context) error {
	select {
	case <-k.done:
		return k.diedError()
	case <-k.closing:
		return fmt.Errorf("closed: %w", ErrKernelDied)
	default:
	}
	select {
	case k.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-k.done:
		return k.diedError()
	case <-k.closing:
		return fmt.Errorf("closed: %w", ErrKernelDied)
	}
}

func (k *Kernel) release() { <-k.turn }

type command struct {
	Type    string            `json:"type"`
	Code    string            `json:"code,omitempty"`
	EnvVars map[string]string `json:"env_vars,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Cwd     string            `json:"cwd,omitempty"`
}

func (k *Kernel) send(c command) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode %s command: %w", c.Type, err)
	}
	select {
	case <-k.done:
		return k.diedError()
	default:
	}
	if _, err := k.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send %s command: %w (%w)", c.Type, ErrKernelDied, err)
	}
	return nil
}

// read splits the event pipe into lines (of any length) until it ends.
func (k *Kernel) read(r *os.File) {
	defer close(k.readerDone)
	defer close(k.lines)
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if len(line) > 0 {
				k.log.Warn("kernel: partial event line at end of stream", "line", truncate(line))
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				k.log.Warn("kernel: reading events", "err", err)
			}
			return
		}
		select {
		case k.lines <- line[:len(line)-1]:
		case <-k.closing:
		}
	}
}

// wait reaps the process. If something else still holds the event pipe open after
// the kernel exited, the pipe is closed so that readers do not hang.
func (k *Kernel) wait(out *os.File) {
	k.waitErr = k.proc.wait(k.readerDone)
	close(k.done)
	k.log.Debug("kernel exited", "status", k.waitErr)
	select {
	case <-k.readerDone:
	case <-time.After(5 * time.Second):
		out.Close()
	}
}

// diedError describes why the kernel is gone. It waits briefly for the exit status
// and kills a kernel whose event pipe ended while it is still running.
func (k *Kernel) diedError() error {
	select {
	case <-k.done:
	case <-time.After(2 * time.Second):
		_ = k.proc.signal(syscall.SIGKILL)
		<-k.done
	}
	msg := "kernel process exited"
	if k.waitErr != nil {
		msg += ": " + k.waitErr.Error()
	}
	k.mu.Lock()
	if k.fatal != "" {
		msg += ": " + k.fatal
	}
	k.mu.Unlock()
	if tail := k.stderr.String(); tail != "" {
		msg += "\nstderr: " + tail
	}
	return fmt.Errorf("%w: %s", ErrKernelDied, msg)
}

func (k *Kernel) noteFatal(line []byte) {
	var f struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(line, &f)
	k.log.Error("kernel: fatal error", "message", f.Message)
	k.mu.Lock()
	k.fatal = f.Message
	k.mu.Unlock()
}
