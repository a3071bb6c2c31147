package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// DialTimeout bounds connecting to an agent.
const DialTimeout = 10 * time.Second

// ErrConnectionLost is returned by Wait when the connection ended before the exit status came; the agent
// has then killed the process group.
var ErrConnectionLost = errors.New("agent: connection lost before the process exited")

// Status is how a remote process ended.
type Status struct {
	// Code is the exit code of a process that exited, -1 for one a signal killed.
	Code int
	// Signal is the name ("KILL") of the signal that killed the process, "" if it exited.
	Signal string
}

// ExitCode is the status as a shell reports it: the exit code, or 128 + the signal's number on this
// system.
func (s Status) ExitCode() int {
	if s.Signal == "" {
		return s.Code
	}
	if sig, err := ParseSignal(s.Signal); err == nil {
		return 128 + int(sig)
	}
	return 128
}

func (s Status) String() string {
	if s.Signal != "" {
		return "signal: " + s.Signal
	}
	return "exit status " + strconv.Itoa(s.Code)
}

// Process is a process started by Start.
type Process struct {
	ctx  context.Context
	conn net.Conn
	pid  int

	wmu sync.Mutex // serializes frame writes

	cmu    sync.Mutex
	cond   *sync.Cond
	window int  // stdin bytes the server still accepts
	ended  bool // the reader is done: no more window will come

	done   chan struct{} // closed when the reader is done
	status *Status       // set before done is closed, if the exit frame came
	err    error         // set before done is closed, otherwise
	stop   func() bool   // stops the context watch
}

// Run starts argv as h describes on the agent at addr and waits for it: see Start and Wait.
func Run(ctx context.Context, addr string, h Header, stdin io.Reader, stdout, stderr io.Writer) (Status, error) {
	p, err := Start(ctx, addr, h, stdin, stdout, stderr)
	if err != nil {
		return Status{}, err
	}
	return p.Wait()
}

// Start connects to the agent at addr (host:port; an IPv6 link-local address with its zone, such as
// [fe80::1%bridge1]:49982, works), has it start the process h describes and relays the process's stdin
// from stdin (nil: empty) and its outputs to stdout and stderr (nil: discarded) until it exits. A
// process that could not start is a *StartError. Cancelling ctx ends the connection, which kills the
// remote process group. Dialing is bounded by DialTimeout, the handshake by HandshakeTimeout; a running
// process has no deadline (a paused VM's processes are merely slow).
func Start(ctx context.Context, addr string, h Header, stdin io.Reader, stdout, stderr io.Writer) (*Process, error) {
	h.Version = Version
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("agent: encode header: %w", err)
	}
	if len(hb) > MaxHeader {
		return nil, fmt.Errorf("agent: header of %d bytes exceeds %d (argv and env too large)", len(hb), MaxHeader)
	}
	conn, br, err := handshake(ctx, addr)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Process, error) {
		conn.Close()
		return nil, err
	}
	if _, err := conn.Write(append(hb, '\n')); err != nil {
		return fail(fmt.Errorf("agent %s: send header: %w", addr, err))
	}
	typ, payload, _, err := readFrame(br, nil)
	if err != nil {
		return fail(fmt.Errorf("agent %s: wait for start: %w", addr, err))
	}
	switch typ {
	case frameStarted:
		var m startedMsg
		if err := json.Unmarshal(payload, &m); err != nil {
			return fail(fmt.Errorf("agent %s: %w: bad start frame: %v", addr, ErrProtocol, err))
		}
		_ = conn.SetDeadline(time.Time{})
		p := &Process{ctx: ctx, conn: conn, pid: m.Pid, window: InitialWindow, done: make(chan struct{})}
		p.cond = sync.NewCond(&p.cmu)
		p.stop = context.AfterFunc(ctx, func() { conn.Close() })
		go p.read(br, stdout, stderr)
		go p.pumpStdin(stdin)
		return p, nil
	case frameError:
		var m errorMsg
		if err := json.Unmarshal(payload, &m); err != nil {
			return fail(fmt.Errorf("agent %s: %w: bad error frame: %v", addr, ErrProtocol, err))
		}
		return fail(&StartError{Code: m.Code, Message: m.Message})
	}
	return fail(fmt.Errorf("agent %s: %w: frame %q before the start", addr, ErrProtocol, typ))
}

// handshake dials addr and reads the agent's hello; the connection's deadline stays set.
func handshake(ctx context.Context, addr string) (net.Conn, *bufio.Reader, error) {
	// No TCP keepalive: a paused VM does not answer probes, and its connections must outlive a pause.
	d := net.Dialer{Timeout: DialTimeout, KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: %w", err)
	}
	deadline := time.Now().Add(HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	br := bufio.NewReader(conn)
	line, err := readLine(br, maxHello)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("agent %s: read hello: %w", addr, err)
	}
	var hl hello
	if err := json.Unmarshal(line, &hl); err != nil || hl.Agent != agentName {
		conn.Close()
		return nil, nil, fmt.Errorf("agent %s: %w: not an agent's hello: %.100q", addr, ErrProtocol, line)
	}
	if hl.Version != Version {
		conn.Close()
		return nil, nil, fmt.Errorf("agent %s: %w: agent speaks version %d, this client %d", addr, ErrProtocol, hl.Version, Version)
	}
	return conn, br, nil
}

// Probe connects to the agent at addr and reads its hello: it answers, and speaks this version.
func Probe(ctx context.Context, addr string) error {
	conn, _, err := handshake(ctx, addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// Pid is the process id in the guest.
func (p *Process) Pid() int { return p.pid }

// Signal delivers sig to the remote process group.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.frame(frameSignal, []byte(SignalName(sig))); err != nil {
		return fmt.Errorf("agent: signal: %w", err)
	}
	return nil
}

// Close ends the connection: a process that has not exited is killed, with its group.
func (p *Process) Close() error {
	return p.conn.Close()
}

// Wait waits for the process to exit and returns its status; if the connection ends first the error is
// ErrConnectionLost (or the context's error). It closes the connection. It does not wait for the stdin
// relay: a read from stdin that never returns is left behind.
func (p *Process) Wait() (Status, error) {
	<-p.done
	p.stop()
	p.conn.Close()
	if p.status != nil {
		return *p.status, nil
	}
	if err := p.ctx.Err(); err != nil {
		return Status{}, fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	return Status{}, p.err
}

func (p *Process) frame(typ byte, payload []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return writeFrame(p.conn, typ, payload)
}

// read handles the server's frames until the exit frame or the end of the connection.
func (p *Process) read(br *bufio.Reader, stdout, stderr io.Writer) {
	defer close(p.done)
	defer func() {
		p.cmu.Lock()
		p.ended = true
		p.cond.Broadcast()
		p.cmu.Unlock()
	}()
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	var buf []byte
	for {
		typ, payload, nb, err := readFrame(br, buf)
		buf = nb
		if err != nil {
			p.err = ErrConnectionLost
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.err = fmt.Errorf("%w: %v", ErrConnectionLost, err)
			}
			return
		}
		switch typ {
		case frameStdout, frameStderr:
			w := stdout
			if typ == frameStderr {
				w = stderr
			}
			if _, err := w.Write(payload); err != nil {
				// Nobody reads the output any more: as a local process would get SIGPIPE, end it.
				p.err = fmt.Errorf("agent: write output: %w", err)
				return
			}
		case frameWindow:
			if len(payload) != 4 {
				p.err = fmt.Errorf("%w: window frame of %d bytes", ErrProtocol, len(payload))
				return
			}
			p.cmu.Lock()
			p.window += int(binary.BigEndian.Uint32(payload))
			p.cond.Broadcast()
			p.cmu.Unlock()
		case frameExit:
			var m exitMsg
			if err := json.Unmarshal(payload, &m); err != nil {
				p.err = fmt.Errorf("%w: bad exit frame: %v", ErrProtocol, err)
				return
			}
			p.status = &Status{Code: m.Code, Signal: m.Signal}
			return
		default:
			p.err = fmt.Errorf("%w: unexpected frame %q", ErrProtocol, typ)
			return
		}
	}
}

// pumpStdin sends stdin to the server within the window it grants, then closes the remote stdin.
func (p *Process) pumpStdin(stdin io.Reader) {
	if stdin == nil {
		_ = p.frame(frameStdinEOF, nil)
		return
	}
	buf := make([]byte, 32<<10)
	for {
		p.cmu.Lock()
		for p.window == 0 && !p.ended {
			p.cond.Wait()
		}
		n, ended := min(p.window, len(buf)), p.ended
		p.cmu.Unlock()
		if ended {
			return
		}
		n, err := stdin.Read(buf[:n])
		if n > 0 {
			p.cmu.Lock()
			p.window -= n
			p.cmu.Unlock()
			if p.frame(frameStdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			_ = p.frame(frameStdinEOF, nil)
			return
		}
	}
}
