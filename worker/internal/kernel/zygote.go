package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"reflect"
	"sync"
	"syscall"
	"time"
)

// Zygote is a fork server: one interpreter that has imported the kernel once and forks a ready kernel
// for each start, so a new code context costs a fork instead of an interpreter start and its imports.
// Forked kernels share the zygote's pages copy-on-write. It serves runtimes whose kernels need nothing
// but a working directory, an environment and a process group (the process runtime); starts that need
// more (a jail, other credentials) use a fresh interpreter.
type Zygote struct {
	python string
	log    *slog.Logger
	cmd    *exec.Cmd
	conn   *net.UnixConn
	mu     sync.Mutex // one request at a time on conn
	done   chan struct{}
}

// StartZygote starts the fork server. moduleDir must hold the module written by WriteModule.
func StartZygote(ctx context.Context, python, moduleDir string, log *slog.Logger) (*Zygote, error) {
	if log == nil {
		log = slog.Default()
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET, 0)
	if err != nil {
		return nil, fmt.Errorf("zygote: socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "zygote"), os.NewFile(uintptr(fds[1]), "zygote-child")
	defer theirs.Close()
	fc, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, fmt.Errorf("zygote: socket: %w", err)
	}
	conn, ok := fc.(*net.UnixConn)
	if !ok {
		fc.Close()
		return nil, fmt.Errorf("zygote: socket is a %T", fc)
	}
	code := fmt.Sprintf("import sys; sys.path.insert(0, %q); import %s as k; del sys.path[0]; k.zygote(3)", moduleDir, moduleName)
	cmd := exec.Command(python, "-u", "-I", "-c", code)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Env = []string{"LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin:/bin"}
	cmd.Stderr = &tailWriter{log: log, max: 8 << 10}
	// Its own process group, so a sandbox's signals never reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("zygote: start %s: %w", python, err)
	}
	z := &Zygote{python: python, log: log.With("subsystem", "zygote"), cmd: cmd, conn: conn, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		z.log.Debug("zygote exited", "status", err)
		close(z.done)
	}()
	// A first fork proves it works (and warms it).
	if err := z.probe(ctx); err != nil {
		z.Close()
		return nil, err
	}
	return z, nil
}

// probe forks a kernel and closes it at once.
func (z *Zygote) probe(ctx context.Context) error {
	k, err := Start(ctx, Config{Python: z.python, Zygote: z, Dir: os.TempDir(), Env: []string{"LANG=C.UTF-8"}, Logger: z.log})
	if err != nil {
		return fmt.Errorf("zygote: first fork: %w", err)
	}
	return k.Close()
}

// Close stops the fork server; kernels it forked live on until they are closed.
func (z *Zygote) Close() error {
	z.conn.Close()
	select {
	case <-z.done:
	case <-time.After(2 * time.Second):
		_ = z.cmd.Process.Kill()
		<-z.done
	}
	return nil
}

type spawnRequest struct {
	Cwd  string            `json:"cwd"`
	Env  map[string]string `json:"env"`
	Pgid int               `json:"pgid"`
}

// errZygoteUnusable means the start needs more than the zygote can give (a jail, credentials, a
// wrapped command); the caller starts a fresh interpreter instead.
var errZygoteUnusable = errors.New("start needs a fresh interpreter")

// spawn forks a kernel with the given standard files. pgid 0 makes it lead a new process group.
func (z *Zygote) spawn(ctx context.Context, req spawnRequest, stdin, stdout, stderr *os.File) (int, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("zygote: encode request: %w", err)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = z.conn.SetDeadline(deadline)
	rights := syscall.UnixRights(int(stdin.Fd()), int(stdout.Fd()), int(stderr.Fd()))
	if _, _, err := z.conn.WriteMsgUnix(data, rights, nil); err != nil {
		return 0, fmt.Errorf("zygote: send: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, _, _, err := z.conn.ReadMsgUnix(buf, nil)
	if err != nil {
		return 0, fmt.Errorf("zygote: receive: %w", err)
	}
	var reply struct {
		Pid   int    `json:"pid"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(buf[:n], &reply); err != nil || (reply.Pid == 0 && reply.Error == "") {
		return 0, fmt.Errorf("zygote: bad reply %.100q", buf[:n])
	}
	if reply.Error != "" {
		return 0, fmt.Errorf("zygote: %s", reply.Error)
	}
	return reply.Pid, nil
}

// forkable reports whether a prepared command can be served by the zygote, and with which process
// group: only a working directory, an environment and a process group are supported.
func forkable(cmd *exec.Cmd, python string) (pgid int, ok bool) {
	if cmd.Path != python && cmd.Args[0] != python {
		return 0, false // wrapped (jexec, ...)
	}
	a := cmd.SysProcAttr
	if a == nil {
		return 0, true
	}
	rest := *a
	rest.Setpgid, rest.Pgid = false, 0
	if !reflect.DeepEqual(rest, syscall.SysProcAttr{}) {
		return 0, false
	}
	if !a.Setpgid {
		return 0, true
	}
	return a.Pgid, true
}

// forkedProcess is a kernel forked by the zygote: not our child, so it is watched through its pid.
type forkedProcess struct{ pid int }

func (p forkedProcess) signal(sig syscall.Signal) error { return syscall.Kill(p.pid, sig) }

// wait returns once the process is gone. The zygote reaps its children at once (SIGCHLD ignored), so
// the pid disappears with the process.
func (p forkedProcess) wait(eof <-chan struct{}) error {
	<-eof // the event pipe closes when the kernel exits
	for i := 0; ; i++ {
		if err := syscall.Kill(p.pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if i == 200 { // still there 2 s after its pipe closed: make sure
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
