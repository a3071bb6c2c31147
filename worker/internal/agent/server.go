package agent

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server runs processes for the clients of a net.Listener: one process per connection, in its own
// process group, with the credentials the header asks for. It is what sbx-agent runs in a guest.
type Server struct {
	// Logger receives one line per process and per refused connection; nil: slog.Default().
	Logger *slog.Logger
	// HandshakeTimeout bounds reading a client's header; zero: HandshakeTimeout.
	HandshakeTimeout time.Duration

	mu     sync.Mutex
	lis    []net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("agent: server closed")

// Serve accepts connections on l and serves each in its own goroutine until l fails or Close is called
// (then it returns ErrServerClosed). It closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.lis = append(s.lis, l)
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.mu.Unlock()
	defer l.Close()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log().Warn("accept failed, retrying", "error", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("agent: accept: %w", err)
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops the listeners and ends every connection, which kills the process groups of those whose
// process has not finished; it returns once every connection's handler has.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, l := range s.lis {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// serveConn runs one connection: handshake, start, relay, exit.
func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	log := s.log().With("remote", c.RemoteAddr().String())
	timeout := s.HandshakeTimeout
	if timeout <= 0 {
		timeout = HandshakeTimeout
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	hb, _ := json.Marshal(hello{Agent: agentName, Version: Version})
	if _, err := c.Write(append(hb, '\n')); err != nil {
		return
	}
	br := bufio.NewReader(c)
	h, err := readHeader(br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			log.Debug("connection closed before a header (a readiness probe)")
			return
		}
		log.Warn("refused a connection", "error", err)
		sendError(c, 2, err.Error())
		return
	}
	_ = c.SetDeadline(time.Time{})
	p, err := startProcess(h)
	if err != nil {
		var se *StartError
		if !errors.As(err, &se) {
			se = &StartError{Code: 1, Message: err.Error()}
		}
		log.Info("process did not start", "argv0", h.Argv[0], "error", se.Message)
		sendError(c, se.Code, se.Message)
		return
	}
	log = log.With("pid", p.pid, "argv0", h.Argv[0])
	log.Debug("process started")
	st := p.relay(c, br)
	log.Debug("process ended", "code", st.Code, "signal", st.Signal)
}

// readHeader reads and checks the client's header line.
func readHeader(br *bufio.Reader) (Header, error) {
	line, err := readLine(br, MaxHeader)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Header{}, io.EOF
		}
		if errors.Is(err, ErrProtocol) {
			return Header{}, fmt.Errorf("header: %w", err)
		}
		return Header{}, fmt.Errorf("read header: %w", err)
	}
	var h Header
	if err := json.Unmarshal(line, &h); err != nil {
		return Header{}, fmt.Errorf("%w: header is not JSON: %v", ErrProtocol, err)
	}
	switch {
	case h.Version != Version:
		return Header{}, fmt.Errorf("%w: unsupported protocol version %d (this agent speaks %d)", ErrProtocol, h.Version, Version)
	case len(h.Argv) == 0 || h.Argv[0] == "":
		return Header{}, fmt.Errorf("%w: empty argv", ErrProtocol)
	case h.Dir != "" && !path.IsAbs(h.Dir):
		return Header{}, fmt.Errorf("%w: directory %q is not absolute", ErrProtocol, h.Dir)
	case (h.UID == nil) != (h.GID == nil):
		return Header{}, fmt.Errorf("%w: uid and gid go together", ErrProtocol)
	case h.UID != nil && (*h.UID < 0 || *h.GID < 0 || *h.UID > math.MaxInt32 || *h.GID > math.MaxInt32):
		return Header{}, fmt.Errorf("%w: uid or gid out of range", ErrProtocol)
	}
	for _, kv := range h.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return Header{}, fmt.Errorf("%w: environment entry %q is not KEY=VALUE", ErrProtocol, kv)
		}
	}
	for _, s := range append(append([]string{h.Dir}, h.Argv...), h.Env...) {
		if strings.IndexByte(s, 0) >= 0 {
			return Header{}, fmt.Errorf("%w: NUL byte in argv, env or dir", ErrProtocol)
		}
	}
	return h, nil
}

func sendError(c net.Conn, code int, msg string) {
	b, _ := json.Marshal(errorMsg{Code: code, Message: msg})
	_ = c.SetWriteDeadline(time.Now().Add(HandshakeTimeout))
	_ = writeFrame(c, frameError, b)
	// Half-close and wait (bounded) for the client to close: closing while it still sends could make
	// the kernel reset the connection, and a reset can overtake the error frame.
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(HandshakeTimeout))
	_, _ = io.Copy(io.Discard, c)
}

// process is a started process and its pipes.
type process struct {
	cmd            *exec.Cmd
	pid            int
	stdin          *os.File // our end of its stdin
	stdout, stderr *os.File // our ends of its outputs
}

// startProcess starts the process h describes in its own process group.
func startProcess(h Header) (*process, error) {
	dir := h.Dir
	if dir == "" {
		dir = "/"
	}
	// exec reports a missing directory like a missing program (the chdir happens in the child): check.
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = syscall.ENOTDIR
		}
		return nil, &StartError{Code: 1, Message: fmt.Sprintf("cannot change to directory %s: %v", dir, unwrapAll(err))}
	}
	bin, err := lookPath(h.Argv[0], envValue(h.Env, "PATH"), dir)
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{Path: bin, Args: h.Argv, Env: h.Env, Dir: dir}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if h.UID != nil && (*h.UID != os.Getuid() || *h.GID != os.Getgid()) {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(*h.UID), Gid: uint32(*h.GID)}
	}
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, startError(h.Argv[0], err)
	}
	inR.Close()
	outW.Close()
	errW.Close()
	return &process{cmd: cmd, pid: cmd.Process.Pid, stdin: inW, stdout: outR, stderr: errR}, nil
}

// startError turns an error of exec into what a shell would say and exit with.
func startError(name string, err error) *StartError {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &StartError{Code: 127, Message: fmt.Sprintf("%s: not found", name)}
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOEXEC) || errors.Is(err, syscall.EISDIR):
		return &StartError{Code: 126, Message: fmt.Sprintf("%s: cannot execute: %v", name, unwrapAll(err))}
	}
	return &StartError{Code: 1, Message: fmt.Sprintf("%s: %v", name, unwrapAll(err))}
}

func unwrapAll(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// lookPath finds name as a shell in dir with PATH pathEnv would.
func lookPath(name, pathEnv, dir string) (string, error) {
	if strings.Contains(name, "/") {
		if !path.IsAbs(name) {
			name = path.Join(dir, name)
		}
		return name, nil
	}
	for _, d := range strings.Split(pathEnv, ":") {
		if d == "" {
			d = "."
		}
		if !path.IsAbs(d) {
			d = path.Join(dir, d)
		}
		p := path.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &StartError{Code: 127, Message: fmt.Sprintf("%s: not found", name)}
}

func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

// connWriter serializes frame writes to a connection.
type connWriter struct {
	mu sync.Mutex
	c  net.Conn
}

func (w *connWriter) frame(typ byte, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return writeFrame(w.c, typ, payload)
}

// relay moves the process's streams over c until it has exited and its outputs are closed, sends the
// exit status and returns it. If the connection ends first, it kills the process group.
func (p *process) relay(c net.Conn, br *bufio.Reader) exitMsg {
	w := &connWriter{c: c}
	started, _ := json.Marshal(startedMsg{Pid: p.pid})
	if err := w.frame(frameStarted, started); err != nil {
		p.killGroup()
	}
	in := newStdinQueue()
	var finished atomic.Bool        // the exit status is known: signals no longer go to the group
	connDone := make(chan struct{}) // the client's side ended (or broke the protocol)
	go func() {
		defer close(connDone)
		p.readClient(br, in, &finished)
	}()
	go p.writeStdin(in, w)

	var outputs sync.WaitGroup
	for _, o := range []struct {
		f   *os.File
		typ byte
	}{{p.stdout, frameStdout}, {p.stderr, frameStderr}} {
		outputs.Add(1)
		go func() {
			defer outputs.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := o.f.Read(buf)
				if n > 0 {
					if werr := w.frame(o.typ, buf[:n]); werr != nil {
						// The client is gone: keep the pipe drained so that the process does not
						// block on it before the group kill lands.
						_, _ = io.Copy(io.Discard, o.f)
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	waited := make(chan exitMsg, 1)
	go func() {
		_ = p.cmd.Wait()
		waited <- exitStatus(p.cmd.ProcessState)
	}()
	outputsDone := make(chan struct{})
	go func() {
		outputs.Wait()
		close(outputsDone)
	}()

	var st exitMsg
	exited, drained, lost := false, false, false
	for !exited || (!drained && !lost) {
		select {
		case st = <-waited:
			exited = true
		case <-outputsDone:
			drained, outputsDone = true, nil
		case <-connDone:
			// The connection ended before the exit status went out: the worker is gone or gave up on
			// the process. Kill the group, then only wait to reap the process.
			lost, connDone = true, nil
			p.killGroup()
		}
	}
	finished.Store(true)
	in.close()
	p.stdin.Close() // unblocks a write to a stdin that a leftover child holds and does not read
	defer p.stdout.Close()
	defer p.stderr.Close()
	if lost {
		return st
	}
	b, _ := json.Marshal(st)
	if err := w.frame(frameExit, b); err != nil {
		p.killGroup()
		return st
	}
	// The exit status is out: the client closes its side; wait for that (bounded), then close ours.
	// Closing while the client still sends could make the kernel reset the connection, and a reset
	// can overtake the exit frame.
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(HandshakeTimeout))
	<-connDone
	return st
}

// readClient handles the client's frames until the connection ends or breaks the protocol.
func (p *process) readClient(br *bufio.Reader, in *stdinQueue, finished *atomic.Bool) {
	var buf []byte
	for {
		typ, payload, nb, err := readFrame(br, buf)
		buf = nb
		if err != nil {
			return
		}
		switch typ {
		case frameStdin:
			if !in.push(payload) {
				return // more than the window allows: a broken client
			}
		case frameStdinEOF:
			in.eof()
		case frameSignal:
			if sig, err := ParseSignal(string(payload)); err == nil && !finished.Load() {
				_ = syscall.Kill(-p.pid, sig)
			}
		default:
			return
		}
	}
}

// writeStdin writes what the client sent to the process's stdin and grants the client window for each
// byte taken off the queue (also when the process no longer reads: the bytes are then dropped).
func (p *process) writeStdin(in *stdinQueue, w *connWriter) {
	defer p.stdin.Close()
	broken := false
	for {
		data, ok := in.pop()
		if !ok {
			return
		}
		if !broken {
			if _, err := p.stdin.Write(data); err != nil {
				broken = true // EPIPE: the process closed its stdin or exited
			}
		}
		var grant [4]byte
		binary.BigEndian.PutUint32(grant[:], uint32(len(data)))
		if err := w.frame(frameWindow, grant[:]); err != nil {
			broken = true
		}
	}
}

// killGroup kills the process's group (the process and whatever it started and left in its group), and
// the process itself if it left the group. os.Process.Kill does nothing once the process was reaped, so
// its pid, free by then, is never signalled.
func (p *process) killGroup() {
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
}

// exitStatus turns a finished process's state into an exitMsg.
func exitStatus(ps *os.ProcessState) exitMsg {
	if ps == nil { // Wait failed without a status: cannot happen after a successful Start
		return exitMsg{Code: 1}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitMsg{Code: -1, Signal: SignalName(ws.Signal())}
	}
	return exitMsg{Code: ps.ExitCode()}
}

// stdinQueue holds the stdin bytes the client sent and the process has not taken yet: at most the window
// the server granted (InitialWindow in total outstanding).
type stdinQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	data   []byte
	closed bool // no more data: the client closed stdin or the process is done
}

func newStdinQueue() *stdinQueue {
	q := &stdinQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push appends b; it reports false if that exceeds the window (a client that does not follow the
// protocol).
func (q *stdinQueue) push(b []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return true // stdin was closed: drop
	}
	if len(q.data)+len(b) > InitialWindow {
		return false
	}
	q.data = append(q.data, b...)
	q.cond.Signal()
	return true
}

// pop returns everything queued, waiting for something; ok is false once the queue is closed and empty.
func (q *stdinQueue) pop() (data []byte, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.data) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.data) == 0 {
		return nil, false
	}
	data, q.data = q.data, nil
	return data, true
}

// eof marks the end of the client's stdin: pop returns what is left, then false.
func (q *stdinQueue) eof() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Signal()
}

// close ends the queue, dropping what is left.
func (q *stdinQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed, q.data = true, nil
	q.cond.Signal()
}
