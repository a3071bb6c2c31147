// Package agent is the sandbox agent's process protocol: how the worker runs a process inside a bhyve VM
// and relays its standard streams, signals and exit status over one TCP connection per process. The
// guest runs a Server (cmd/sbx-agent serve); the worker runs each process through ExecMain (the
// worker binary's "agent-exec" subcommand), a client that makes the remote process look like a local
// child: its stdin, stdout and stderr are the client's, signals sent to the client reach the remote
// process group, and the client exits with the remote status.
//
// A connection, once dialed:
//
//	server → client  hello line:  {"agent":"sbx-agent","version":1}\n
//	client → server  header line: {"version":1,"argv":[...],"env":[...],"dir":"/home/user","uid":1000,"gid":1000}\n
//	server → client  frame started {"pid":N}, or frame error {"code":127,"message":"..."} and the end
//	then frames both ways until the server sends exit {"code":N} or {"signal":"TERM"}.
//
// A frame is one type byte, a big-endian uint32 payload length (at most MaxFrame) and the payload.
// Client → server: stdin data, stdin close, signal (a signal name such as "INT", delivered to the
// process group). Server → client: stdout data, stderr data, window (uint32: the client may send that
// many more stdin bytes; it starts with InitialWindow, so a process that does not read its stdin never
// makes the agent buffer more than that and never delays a signal behind stdin data), exit. Output is
// flow-controlled by TCP itself: the server reads a process's pipe only as fast as the client takes the
// frames. Signals travel by name because their numbers differ between operating systems.
//
// The process starts in its own process group; when the connection ends before the exit status was
// sent (the client died, the worker lost the VM), the agent kills that group with SIGKILL. After the
// exit status, the group's remaining members (background children) live on, as they would on any host.
// There are no terminals (PTYs) in this version: the remote process's standard streams are pipes.
//
// Files are not part of the protocol: the bhyve runtime shares the sandbox user's home with the guest
// over virtio-9p.
package agent

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Version is the protocol version this package speaks. A server refuses a header of another version.
const Version = 1

// DefaultPort is the TCP port the agent listens on in a guest.
const DefaultPort = 49982

// Limits of the protocol.
const (
	// MaxHeader bounds the client's header line (argv and env together; the code kernel's source is
	// passed in argv, about 30 KiB).
	MaxHeader = 1 << 20
	// maxHello bounds the server's hello line.
	maxHello = 4 << 10
	// MaxFrame bounds a frame's payload.
	MaxFrame = 64 << 10
	// InitialWindow is how many stdin bytes a client may send before the server grants more.
	InitialWindow = 256 << 10
	// HandshakeTimeout bounds each side's wait for the other's hello, header and first frame.
	HandshakeTimeout = 10 * time.Second
)

// agentName identifies the server in its hello line.
const agentName = "sbx-agent"

// Frame types.
const (
	frameStdin    byte = 'i' // client: stdin data
	frameStdinEOF byte = 'c' // client: close the process's stdin
	frameSignal   byte = 's' // client: signal name
	frameStarted  byte = 'p' // server: JSON startedMsg
	frameStdout   byte = 'o' // server: stdout data
	frameStderr   byte = 'e' // server: stderr data
	frameWindow   byte = 'w' // server: uint32, more stdin bytes the client may send
	frameExit     byte = 'x' // server: JSON exitMsg, the last frame
	frameError    byte = 'f' // server: JSON errorMsg, the process did not start; the last frame
)

// hello is the server's first line.
type hello struct {
	Agent   string `json:"agent"`
	Version int    `json:"version"`
}

// Header is what the client asks the agent to run. Paths are the guest's.
type Header struct {
	// Version is the protocol version; Start sets it.
	Version int `json:"version"`
	// Argv is the command line; argv[0] is looked up on Env's PATH (or taken relative to Dir if it
	// contains a slash).
	Argv []string `json:"argv"`
	// Env is the whole environment of the process (KEY=VALUE).
	Env []string `json:"env,omitempty"`
	// Dir is the working directory, an absolute path; empty means "/".
	Dir string `json:"dir,omitempty"`
	// UID and GID, if set, are the credentials the process runs as (the agent must be root to switch);
	// unset, it runs as the agent does.
	UID *int `json:"uid,omitempty"`
	GID *int `json:"gid,omitempty"`
}

// startedMsg is the payload of frameStarted.
type startedMsg struct {
	Pid int `json:"pid"`
}

// exitMsg is the payload of frameExit: Code for a process that exited, Signal for one a signal killed.
type exitMsg struct {
	Code   int    `json:"code"`
	Signal string `json:"signal,omitempty"`
}

// errorMsg is the payload of frameError: the process could not start. Code is what a shell would exit
// with (127: not found, 126: not executable, 1: anything else, such as a missing directory).
type errorMsg struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// StartError is returned by Start when the agent could not start the process.
type StartError struct {
	// Code is the exit status a shell would give: 127 not found, 126 not executable, 1 otherwise.
	Code    int
	Message string
}

func (e *StartError) Error() string { return e.Message }

// ErrProtocol is wrapped by errors about a peer that does not follow the protocol.
var ErrProtocol = errors.New("agent protocol error")

// writeFrame writes one frame. The caller serializes writers.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrProtocol, len(payload), MaxFrame)
	}
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if len(payload) == 0 {
		_, err := w.Write(hdr[:])
		return err
	}
	// One write, so that a frame is one segment when it fits and writers need no buffering.
	buf := make([]byte, 0, len(hdr)+len(payload))
	buf = append(append(buf, hdr[:]...), payload...)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame into buf (grown as needed, up to MaxFrame) and returns its type and payload,
// which aliases buf. A frame longer than MaxFrame is a protocol error; a stream that ends inside a frame
// is io.ErrUnexpectedEOF, one that ends between frames io.EOF.
func readFrame(r io.Reader, buf []byte) (typ byte, payload, newBuf []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrame {
		return 0, nil, buf, fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrProtocol, n, MaxFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	payload = buf[:n]
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, buf, err
	}
	return hdr[0], payload, buf, nil
}

// readLine reads one '\n'-terminated line of at most max bytes (without the newline).
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max+1 || (len(line) > max && line[len(line)-1] != '\n') {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, max)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// signals maps the names of the signals the protocol carries to this system's numbers.
var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "ILL": syscall.SIGILL,
	"TRAP": syscall.SIGTRAP, "ABRT": syscall.SIGABRT, "BUS": syscall.SIGBUS, "FPE": syscall.SIGFPE,
	"KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1, "SEGV": syscall.SIGSEGV, "USR2": syscall.SIGUSR2,
	"PIPE": syscall.SIGPIPE, "ALRM": syscall.SIGALRM, "TERM": syscall.SIGTERM, "CHLD": syscall.SIGCHLD,
	"CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP, "TTIN": syscall.SIGTTIN,
	"TTOU": syscall.SIGTTOU, "URG": syscall.SIGURG, "XCPU": syscall.SIGXCPU, "XFSZ": syscall.SIGXFSZ,
	"VTALRM": syscall.SIGVTALRM, "PROF": syscall.SIGPROF, "WINCH": syscall.SIGWINCH, "IO": syscall.SIGIO,
	"SYS": syscall.SIGSYS,
}

// SignalName returns the protocol name of sig ("INT"), or "SIG<n>" for a signal without one.
func SignalName(sig syscall.Signal) string {
	for name, s := range signals {
		if s == sig {
			return name
		}
	}
	return "SIG" + strconv.Itoa(int(sig))
}

// ParseSignal returns this system's number of the signal named name ("INT", "SIGINT" or "SIG<n>").
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.TrimPrefix(name, "SIG")
	if s, ok := signals[n]; ok {
		return s, nil
	}
	if v, err := strconv.Atoi(n); err == nil && v > 0 && v < 128 && strings.HasPrefix(name, "SIG") {
		return syscall.Signal(v), nil
	}
	return 0, fmt.Errorf("unknown signal %q", name)
}
