package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"syscall"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/procs"
	"fleetbox.dev/worker/internal/runtime"
)

// launcher runs a command through the shell so that a missing program still starts (and fails with
// the shell's message on stderr and exit code 127, as envd's wrapper does), then execs it: the pid a
// client sees is the command's own.
var launcher = []string{"/bin/sh", "-c", `exec "$@"`, "sh"}

// opProcessStart starts a process and answers with its pid once it runs. Its events go to the
// request's stream: start at once, then output, keepalives and its end (see streamProcess).
func (w *Worker) opProcessStart(_ context.Context, id string, req schema.ProcessStartRequest) (schema.ProcessStartReply, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return schema.ProcessStartReply{}, err
	}
	// A pause waits for this start, and a start does not begin while the sandbox pauses or is paused.
	sb.startMu.RLock()
	defer sb.startMu.RUnlock()
	if sb.isPaused() {
		return schema.ProcessStartReply{}, sandboxPaused(id)
	}
	if !schema.ValidToken(req.Stream) {
		return schema.ProcessStartReply{}, schema.Errorf(http.StatusBadRequest, "invalid stream id %q", req.Stream)
	}
	if req.Process.Cmd == "" {
		return schema.ProcessStartReply{}, schema.Errorf(http.StatusBadRequest, "process.cmd is required")
	}
	user, home, err := envdUser(req.User)
	if err != nil {
		return schema.ProcessStartReply{}, err
	}
	cwd, err := sb.envd.fs.Resolve(expandPath(home, req.Process.Cwd))
	if err != nil {
		return schema.ProcessStartReply{}, err
	}
	if fi, err := os.Stat(cwd.Host); err != nil || !fi.IsDir() {
		return schema.ProcessStartReply{}, schema.Errorf(http.StatusBadRequest, "cwd '%s' does not exist", cwd.Path)
	}
	procHome, err := sb.procPath(home)
	if err != nil {
		return schema.ProcessStartReply{}, fmt.Errorf("home of %s: %w", user, err)
	}
	env := map[string]string{"HOME": procHome, "USER": user, "LOGNAME": user}
	maps.Copy(env, req.Process.Envs)
	argv := append(append([]string(nil), launcher...), req.Process.Cmd)
	argv = append(argv, req.Process.Args...)
	// The process's life is the table's business (timeout, signals, the sandbox's end), not a context's.
	cmd, err := sb.rt.Command(context.Background(), argv, cwd.Path, env)
	if err != nil {
		if errors.Is(err, runtime.ErrDestroyed) {
			return schema.ProcessStartReply{}, sandboxNotFound(id)
		}
		return schema.ProcessStartReply{}, fmt.Errorf("start %s: %w", req.Process.Cmd, err)
	}
	if o := sb.fileOwner(user); o != nil { // the runtime knows its users: run as the one asked for
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(o.UID), Gid: uint32(o.GID)}
	}
	// The writer hears the reader's cancel from before the reply on.
	writer, err := bus.NewStreamWriter(w.bus.NC, id, req.Stream)
	if err != nil {
		return schema.ProcessStartReply{}, err
	}
	p, sub, err := sb.envd.procs.Start(cmd, procs.Options{
		Config: req.Process, Tag: req.Tag, PTY: req.PTY, Stdin: req.Stdin, Timeout: req.Timeout,
	})
	if err != nil {
		_ = writer.Close(nil)
		if errors.Is(err, procs.ErrClosed) {
			return schema.ProcessStartReply{}, sandboxNotFound(id)
		}
		return schema.ProcessStartReply{}, schema.Errorf(http.StatusInternalServerError, "start %s: %v", req.Process.Cmd, unwrapPath(err))
	}
	sb.envd.goStream(func() { w.streamProcess(sb, sub, writer, req.Stream, true, 0) })
	return schema.ProcessStartReply{PID: p.PID()}, nil
}

// opProcessConnect streams a process's events from now on (start, new output, end); a process that
// already ended gives start and end.
func (w *Worker) opProcessConnect(_ context.Context, id string, req schema.ProcessConnectRequest) (schema.ProcessStartReply, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return schema.ProcessStartReply{}, err
	}
	if !schema.ValidToken(req.Stream) {
		return schema.ProcessStartReply{}, schema.Errorf(http.StatusBadRequest, "invalid stream id %q", req.Stream)
	}
	p, err := sb.envd.procs.Find(req.Process)
	if err != nil {
		return schema.ProcessStartReply{}, processError(req.Process, err)
	}
	writer, err := bus.NewStreamWriter(w.bus.NC, id, req.Stream)
	if err != nil {
		return schema.ProcessStartReply{}, err
	}
	sub := p.Subscribe()
	sb.envd.goStream(func() { w.streamProcess(sb, sub, writer, req.Stream, false, req.Timeout) })
	return schema.ProcessStartReply{PID: p.PID()}, nil
}

// streamProcess writes a subscription's events to a stream as envd's ProcessEvent lines, with a
// keepalive after each idle interval, and ends the stream after the end event. The process's own
// stream (owner) ends with a 504 instead when the process's lifetime ran out; any stream ends with a
// 503 when the sandbox is killed, and with a 504 when its own timeout (Connect's) passes. A reader
// that goes away ends the stream, not the process.
func (w *Worker) streamProcess(sb *sandbox, sub *procs.Subscription, writer *bus.StreamWriter, stream string, owner bool, timeout time.Duration) {
	defer sub.Close()
	pid := sub.Process().PID()
	keepalive := time.NewTimer(w.keepalive())
	defer keepalive.Stop()
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	closeWith := func(err error) {
		if cerr := writer.Close(err); cerr != nil && !errors.Is(cerr, bus.ErrStreamCanceled) {
			sb.log.Debug("close process stream", logkey.Stream, stream, "pid", pid, logkey.Error, cerr)
		}
	}
	for {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				closeWith(sandboxKilled(sb.id)) // the table closed before the end reached us
				return
			}
			if ev.Kind == procs.KindEnd {
				switch {
				case ev.End.Reason == procs.ReasonClosed:
					closeWith(sandboxKilled(sb.id))
				case ev.End.Reason == procs.ReasonTimeout && owner:
					closeWith(schema.Errorf(http.StatusGatewayTimeout, "process %d killed: its timeout passed", pid))
				default:
					if _, err := writer.Write(ev.Line()); err != nil {
						closeWith(nil)
						return
					}
					closeWith(nil)
				}
				return
			}
			if _, err := writer.Write(ev.Line()); err != nil {
				// The reader went away: the process keeps running, its output is dropped.
				sb.log.Debug("process stream reader gone", logkey.Stream, stream, "pid", pid, logkey.Error, err)
				closeWith(nil)
				return
			}
			keepalive.Reset(w.keepalive())
		case <-keepalive.C:
			if _, err := writer.Write(procs.KeepaliveLine); err != nil {
				closeWith(nil)
				return
			}
			keepalive.Reset(w.keepalive())
		case <-writer.Canceled():
			closeWith(nil)
			return
		case <-deadline:
			closeWith(schema.Errorf(http.StatusGatewayTimeout, "stream of process %d: deadline exceeded", pid))
			return
		}
	}
}

// opProcessList lists the running processes.
func (w *Worker) opProcessList(_ context.Context, id string, _ schema.Empty) ([]schema.ProcessInfo, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return nil, err
	}
	return sb.envd.procs.List(), nil
}

// opProcessInput writes to a running process's stdin or terminal.
func (w *Worker) opProcessInput(ctx context.Context, id string, req schema.ProcessInputRequest) (schema.Empty, error) {
	p, err := w.runningProcess(id, req.Process)
	if err != nil {
		return schema.Empty{}, err
	}
	deadline, _ := ctx.Deadline()
	if req.PTY != nil {
		err = p.WritePTY(req.PTY, deadline)
	} else {
		err = p.WriteStdin(req.Stdin, deadline)
	}
	return schema.Empty{}, processError(req.Process, err)
}

// opProcessSignal sends SIGKILL (9) or SIGTERM (15) to a running process's group.
func (w *Worker) opProcessSignal(_ context.Context, id string, req schema.ProcessSignalRequest) (schema.Empty, error) {
	var sig syscall.Signal
	switch req.Signal {
	case int(syscall.SIGKILL):
		sig = syscall.SIGKILL
	case int(syscall.SIGTERM):
		sig = syscall.SIGTERM
	default:
		return schema.Empty{}, schema.Errorf(http.StatusBadRequest, "unsupported signal %d: only 9 (SIGKILL) and 15 (SIGTERM)", req.Signal)
	}
	p, err := w.runningProcess(id, req.Process)
	if err != nil {
		return schema.Empty{}, err
	}
	return schema.Empty{}, processError(req.Process, p.Signal(sig))
}

// opProcessCloseStdin closes a running process's stdin.
func (w *Worker) opProcessCloseStdin(_ context.Context, id string, req schema.ProcessRequest) (schema.Empty, error) {
	p, err := w.runningProcess(id, req.Process)
	if err != nil {
		return schema.Empty{}, err
	}
	return schema.Empty{}, processError(req.Process, p.CloseStdin())
}

// opProcessUpdate resizes a running process's terminal.
func (w *Worker) opProcessUpdate(_ context.Context, id string, req schema.ProcessUpdateRequest) (schema.Empty, error) {
	p, err := w.runningProcess(id, req.Process)
	if err != nil || req.PTY == nil {
		return schema.Empty{}, err
	}
	return schema.Empty{}, processError(req.Process, p.Resize(*req.PTY))
}

func (w *Worker) runningProcess(id string, sel schema.ProcessSelector) (*procs.Process, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return nil, err
	}
	p, err := sb.envd.procs.Running(sel)
	if err != nil {
		return nil, processError(sel, err)
	}
	return p, nil
}

// processError maps the process table's errors to envd's codes.
func processError(sel schema.ProcessSelector, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, procs.ErrNotFound), errors.Is(err, procs.ErrFinished):
		if sel.PID == 0 && sel.Tag != "" {
			return schema.Errorf(http.StatusNotFound, "process with tag %s not found", sel.Tag)
		}
		return schema.Errorf(http.StatusNotFound, "process with pid %d not found", sel.PID)
	case errors.Is(err, procs.ErrIsPTY), errors.Is(err, procs.ErrNotPTY):
		return schema.Errorf(http.StatusBadRequest, "%v", err)
	}
	return schema.Errorf(http.StatusInternalServerError, "%v", unwrapPath(err))
}

// unwrapPath drops an *fs.PathError's host path from an error that reaches a client.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
