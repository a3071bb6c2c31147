package bhyvetest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"fleetbox.dev/worker/internal/agent"
	"fleetbox.dev/worker/internal/runtime"
)

// guestMounts makes the mounts of a fake guest in its own mount namespace: mounts private (nothing
// propagates to the host), a tmpfs over /home, and home (unless empty) bind mounted at /home/user.
func guestMounts(home string) error {
	type step struct {
		what string
		do   func() error
	}
	steps := []step{
		{"make mounts private", func() error { return syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, "") }},
		{"mount /home", func() error { return syscall.Mount("tmpfs", "/home", "tmpfs", 0, "mode=755") }},
	}
	if home != "" {
		steps = append(steps,
			step{"make /home/user", func() error { return os.Mkdir(runtime.SandboxHome, 0o755) }},
			step{"mount the home", func() error { return syscall.Mount(home, runtime.SandboxHome, "", syscall.MS_BIND, "") }},
		)
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("fake guest: %s: %w", s.what, err)
		}
	}
	return nil
}

// guestMain runs in a new mount namespace: it mounts the shared home at /home/user, serves an agent on
// a loopback port and prints its address.
func guestMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: "+guestArg+" HOME")
		return 2
	}
	if err := guestMounts(args[0]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake guest:", err)
		return 1
	}
	fmt.Println(lis.Addr().String())
	srv := &agent.Server{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if err := srv.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "fake guest:", err)
		return 1
	}
	return 0
}

// Guest is a fake VM: the fake guest process (its "bhyve", a bhyve.Process) and every process in its
// mount namespace (its agent and what the agent runs).
type Guest struct {
	cmd     *exec.Cmd
	addr    string
	mntNS   string // readlink /proc/<pid>/ns/mnt
	vmmFile string
	done    chan struct{}
	once    sync.Once
}

func startGuest(home, console string) (*Guest, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	log, err := os.OpenFile(console, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd := exec.Command(self, guestArg, home)
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start fake guest: %w", err)
	}
	g := &Guest{cmd: cmd, done: make(chan struct{})}
	ns, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid))
	own, err2 := os.Readlink("/proc/self/ns/mnt")
	if err1 != nil || err2 != nil || ns == own {
		// destroy kills the namespace's processes: never the test's own.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("fake guest: no mount namespace of its own (%q, own %q): %v", ns, own, errors.Join(err1, err2))
	}
	g.mntNS = ns
	line, err := bufio.NewReader(out).ReadString('\n') // before Wait, which closes the pipe
	go func() {
		_ = cmd.Wait()
		close(g.done)
	}()
	if err != nil {
		g.destroy()
		b, _ := os.ReadFile(console)
		return nil, fmt.Errorf("fake guest did not start: %v: %s", err, b)
	}
	g.addr = strings.TrimSpace(line)
	return g, nil
}

// Pid returns the fake guest process's pid (its "bhyve"; also the pid of its agent).
func (g *Guest) Pid() int { return g.cmd.Process.Pid }

// Done is closed when the fake guest process has exited.
func (g *Guest) Done() <-chan struct{} { return g.done }

// Addr returns the guest agent's address.
func (g *Guest) Addr() string { return g.addr }

// Signal acts as on a bhyve process: STOP and CONT stop and continue the whole guest, KILL ends it.
func (g *Guest) Signal(sig syscall.Signal) error {
	select {
	case <-g.done:
		return os.ErrProcessDone
	default:
	}
	switch sig {
	case syscall.SIGKILL:
		g.destroy()
	case syscall.SIGSTOP:
		g.stopAll()
	default:
		g.signalAll(sig)
	}
	return nil
}

// Pids returns the processes of the guest: those in its mount namespace (zombies have none). Once the
// guest is destroyed there are none.
func (g *Guest) Pids() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && ns == g.mntNS {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Stopped reports whether the guest has processes and every one of them is stopped, as in a stopped VM.
func (g *Guest) Stopped() bool {
	pids := g.Pids()
	for _, pid := range pids {
		if st := ProcessState(pid); st != 'T' && st != 't' {
			return false
		}
	}
	return len(pids) > 0
}

// Clients returns the host's agent clients of this guest: the processes running "agent-exec" with its
// address (the host side of the VM's processes; they end when the VM is destroyed).
func (g *Guest) Clients() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00")
		if len(args) < 2 || args[1] != agentExecArg {
			continue
		}
		if i := slices.Index(args, "-addr"); i >= 0 && i+1 < len(args) && args[i+1] == g.addr {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ProcessState returns the state letter of process pid in /proc/<pid>/stat (R, S, T, Z, ...), 0 if
// there is no such process.
func ProcessState(pid int) byte {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && len(b) > i+2 {
		return b[i+2]
	}
	return 0
}

func (g *Guest) signalAll(sig syscall.Signal) {
	for _, pid := range g.Pids() {
		_ = syscall.Kill(pid, sig)
	}
}

// stopAll stops every process of the guest, again until none runs (one may fork meanwhile).
func (g *Guest) stopAll() {
	for range 50 {
		g.signalAll(syscall.SIGSTOP)
		running := false
		for _, pid := range g.Pids() {
			if st := ProcessState(pid); st != 0 && st != 'T' {
				running = true
			}
		}
		if !running {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// destroy kills every process of the guest, as destroying a VM does, and waits for the fake guest.
func (g *Guest) destroy() {
	g.once.Do(func() {
		if g.mntNS != "" {
			for range 1000 {
				pids := g.Pids()
				if len(pids) == 0 {
					break
				}
				for _, pid := range pids {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				time.Sleep(time.Millisecond)
			}
		}
		_ = g.cmd.Process.Kill()
		<-g.done
		if g.vmmFile != "" {
			os.Remove(g.vmmFile)
		}
	})
}
