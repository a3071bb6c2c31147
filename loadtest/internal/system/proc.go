package system

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcConfig says how to start one server process.
type ProcConfig struct {
	Name     string   // for messages: "apiserver", "worker-1"
	Bin      string   // the binary
	Args     []string // its flags
	Env      []string // nil: CleanEnv()
	Log      string   // file for its stdout and stderr, appended to across restarts
	Watchdog *Watchdog
}

// Proc is one server process, in a process group of its own (on Linux the kernel also SIGTERMs it when the
// process that started it dies). It can be signalled and started again with the same configuration.
type Proc struct {
	cfg ProcConfig
	mu  sync.Mutex
	cur *run // the latest start
}

// run is one start of a Proc.
type run struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returned
	err  error         // cmd.Wait's result, set before done closes
}

// StartProc starts a process; Terminate (or Kill) ends it.
func StartProc(cfg ProcConfig) (*Proc, error) {
	if cfg.Env == nil {
		cfg.Env = CleanEnv()
	}
	p := &Proc{cfg: cfg}
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Proc) start() error {
	f, err := os.OpenFile(p.cfg.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.cfg.Bin, p.cfg.Args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = f, f, p.cfg.Env
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.cfg.Name, err)
	}
	if p.cfg.Watchdog != nil {
		p.cfg.Watchdog.WatchGroup(cmd.Process.Pid)
	}
	r := &run{cmd: cmd, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		f.Close()
		close(r.done)
	}()
	p.mu.Lock()
	p.cur = r
	p.mu.Unlock()
	return nil
}

func (p *Proc) latest() *run {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// Name is the name it was started with.
func (p *Proc) Name() string { return p.cfg.Name }

// LogPath is the file holding its output.
func (p *Proc) LogPath() string { return p.cfg.Log }

// PID is the process id of the latest start (also the id of its process group).
func (p *Proc) PID() int { return p.latest().cmd.Process.Pid }

// Exited reports whether the latest start has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.latest().done:
		return true
	default:
		return false
	}
}

// ExitErr waits for the process to exit and returns how it ended ("exit status 0" for a clean exit).
func (p *Proc) ExitErr() error {
	r := p.latest()
	<-r.done
	if r.err == nil {
		return errors.New("exit status 0")
	}
	return r.err
}

// Terminate sends SIGTERM to the process group and waits up to grace for the process to exit, then SIGKILLs
// the group. It reports whether the process exited within grace; either way the group is gone afterwards.
func (p *Proc) Terminate(grace time.Duration) bool {
	r := p.latest()
	pgid := r.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-r.done:
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // stragglers of its group
		return true
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-r.done
		return false
	}
}

// Kill sends SIGKILL to the process alone, not its group, and waits for it: a crash, after which a
// worker's sandboxes are left behind.
func (p *Proc) Kill() {
	r := p.latest()
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// Restart starts the process again with the same binary, flags and log, after it exited (Kill, Terminate).
func (p *Proc) Restart() error {
	if !p.Exited() {
		return fmt.Errorf("restart %s: it is still running", p.cfg.Name)
	}
	return p.start()
}

// Tail returns the last n lines of its log.
func (p *Proc) Tail(n int) string { return Tail(p.cfg.Log, n) }

// Tail returns the last n lines of a file, saying how many came before them.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines in %s)", len(lines)-n, path)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// CleanEnv is this process's environment without what could redirect the servers or the SDKs: E2B_*
// and the proxy variables.
func CleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		uk := strings.ToUpper(k)
		if strings.HasPrefix(uk, "E2B_") || uk == "HTTP_PROXY" || uk == "HTTPS_PROXY" || uk == "ALL_PROXY" || uk == "NO_PROXY" {
			continue
		}
		out = append(out, kv)
	}
	return out
}
