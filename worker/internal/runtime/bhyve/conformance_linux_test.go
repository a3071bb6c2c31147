package bhyve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fleetbox.dev/worker/internal/agent"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
	"fleetbox.dev/worker/internal/runtime/runtimetest"
)

// This file runs the runtime conformance suite against the bhyve runtime on Linux, with everything real
// but the hypervisor: the VM's system commands go to fakeHost, a stateful stand-in for zfs, ifconfig and
// bhyvectl, and each "VM" is a fake guest: this test binary, re-executed as a real agent.Server on
// 127.0.0.1 in a mount namespace of its own whose /home/user is the VM's shared home directory bind
// mounted (as the guest's fstab mounts the 9p share). Processes run through the real agent client
// (this test binary as "agent-exec", as the sandbox user), so Command, Prepare, Env, files through
// /home/user, pause (every process of the namespace stopped, as a stopped bhyve stops its guest),
// destroy and cleanup (every process of the namespace killed, as a destroyed VM) are tested end to end.

const fakeGuestArg = "fake-guest"

// TestMain makes this test binary the agent client ("agent-exec", as the worker binary dispatches it)
// and the fake guest.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "agent-exec":
			os.Exit(agent.ExecMain(os.Args[2:]))
		case fakeGuestArg:
			os.Exit(fakeGuestMain(os.Args[2:]))
		}
	}
	code := m.Run()
	if worldBin.dir != "" {
		os.RemoveAll(worldBin.dir)
	}
	os.Exit(code)
}

// fakeGuestMain runs in a new mount namespace: it mounts the shared home at /home/user (on a tmpfs over
// /home, in this namespace only), serves an agent on a loopback port and prints its address.
func fakeGuestMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: fake-guest HOME")
		return 2
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"make mounts private", func() error { return syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, "") }},
		{"mount /home", func() error { return syscall.Mount("tmpfs", "/home", "tmpfs", 0, "mode=755") }},
		{"make /home/user", func() error { return os.Mkdir(runtime.SandboxHome, 0o755) }},
		{"mount the home", func() error { return syscall.Mount(args[0], runtime.SandboxHome, "", syscall.MS_BIND, "") }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			fmt.Fprintf(os.Stderr, "fake guest: %s: %v\n", s.what, err)
			return 1
		}
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

// worldBin is a copy of this test binary that the sandbox user may run: agent clients run as it.
var worldBin struct {
	once      sync.Once
	dir, path string
	err       error
}

func worldExecutable(t *testing.T) string {
	t.Helper()
	worldBin.once.Do(func() {
		self, err := os.Executable()
		if err != nil {
			worldBin.err = err
			return
		}
		if worldBin.dir, err = os.MkdirTemp("", "bhyve-test-client-"); err != nil {
			worldBin.err = err
			return
		}
		worldBin.path = filepath.Join(worldBin.dir, "bhyve.test")
		worldBin.err = errors.Join(os.Chmod(worldBin.dir, 0o755), copyFile(self, worldBin.path, 0o755))
	})
	if worldBin.err != nil {
		t.Fatal(worldBin.err)
	}
	return worldBin.path
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func TestConformance(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("the fake guests need root: mount namespaces, a home owned by the sandbox user, processes run as it")
	}
	client := worldExecutable(t)
	runtimetest.Run(t, func(t *testing.T) runtime.Runtime {
		data := t.TempDir()
		h := newFakeHost(t, filepath.Join(data, "vmm"))
		r, err := New(Config{
			DataDir: data, VMDataset: "tank/fb/vm", ImageDataset: "tank/fb/img", VMMDir: h.vmmDir,
			Exec: h, Launcher: h, AgentClient: client, AgentAddress: h.agentAddr,
			BootTimeout: 20 * time.Second, StopTimeout: 5 * time.Second,
			Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

// fakeHost stands in for the host's zfs, ifconfig and bhyvectl (executor.Executor) and bhyve
// (Launcher), keeping their state: datasets, taps and their descriptions, vmm instances (files in
// vmmDir, as /dev/vmm lists them) and the fake guests.
type fakeHost struct {
	t      *testing.T
	vmmDir string

	mu       sync.Mutex
	datasets map[string]bool
	taps     map[string]string // tap → description
	nextTap  int
	guests   map[string]*fakeGuest // by vm name
}

var (
	_ executor.Executor = (*fakeHost)(nil)
	_ Launcher          = (*fakeHost)(nil)
)

func newFakeHost(t *testing.T, vmmDir string) *fakeHost {
	t.Helper()
	if err := os.MkdirAll(vmmDir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &fakeHost{t: t, vmmDir: vmmDir, datasets: map[string]bool{}, taps: map[string]string{}, guests: map[string]*fakeGuest{}}
	t.Cleanup(func() { // nothing may outlive the test, whatever it left
		h.mu.Lock()
		guests := slices.Collect(maps.Values(h.guests))
		h.mu.Unlock()
		for _, g := range guests {
			g.destroy()
		}
	})
	return h
}

func fail(argv []string, msg string) error {
	return &executor.ExitError{Argv: argv, Code: 1, Stderr: msg}
}

// Run answers the commands the runtime runs from the host's state.
func (h *fakeHost) Run(ctx context.Context, argv []string, _ []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	line := strings.Join(argv, " ")
	switch {
	case len(argv) == 6 && line == strings.Join(zvolCloneCmd(argv[4], argv[5]), " "):
		if h.datasets[argv[5]] {
			return nil, fail(argv, fmt.Sprintf("cannot create '%s': dataset already exists", argv[5]))
		}
		h.datasets[argv[5]] = true
		return nil, nil
	case len(argv) == 4 && line == strings.Join(zfsDestroyCmd(argv[3]), " "):
		if !h.datasets[argv[3]] {
			return nil, fail(argv, fmt.Sprintf("cannot open '%s': dataset does not exist", argv[3]))
		}
		delete(h.datasets, argv[3])
		return nil, nil
	case len(argv) == 10 && line == strings.Join(zfsListCmd(argv[9]), " "):
		out := argv[9] + "\n"
		for ds := range h.datasets {
			if strings.HasPrefix(ds, argv[9]+"/") {
				out += ds + "\n"
			}
		}
		return []byte(out), nil
	case line == "ifconfig tap create":
		tap := "tap" + strconv.Itoa(h.nextTap)
		h.nextTap++
		h.taps[tap] = ""
		return []byte(tap + "\n"), nil
	case line == "ifconfig -g tap":
		var out strings.Builder
		for tap := range h.taps {
			out.WriteString(tap + ": flags=8943<UP,BROADCAST,RUNNING> metric 0 mtu 1500\n")
		}
		if out.Len() == 0 {
			return nil, fail(argv, "")
		}
		return []byte(out.String()), nil
	case argv[0] == "ifconfig" && len(argv) >= 2 && strings.HasPrefix(argv[1], "tap"):
		tap := argv[1]
		desc, ok := h.taps[tap]
		if !ok {
			return nil, fail(argv, "ifconfig: interface "+tap+" does not exist")
		}
		switch {
		case len(argv) == 2:
			return []byte(tap + ": flags=8943 metric 0 mtu 1500\n\tdescription: " + desc + "\n"), nil
		case len(argv) == 4 && argv[2] == "description":
			h.taps[tap] = argv[3]
		case len(argv) == 3 && argv[2] == "destroy":
			delete(h.taps, tap)
		case len(argv) == 3 && argv[2] == "up":
		default:
			return nil, fail(argv, "unexpected ifconfig command")
		}
		return nil, nil
	case argv[0] == "ifconfig" && len(argv) == 4 && (argv[2] == "addm" || argv[2] == "private"):
		if _, ok := h.taps[argv[3]]; !ok {
			return nil, fail(argv, "ifconfig: interface "+argv[3]+" does not exist")
		}
		return nil, nil
	case argv[0] == "bhyvectl" && len(argv) == 3 && argv[2] == "--destroy":
		name := strings.TrimPrefix(argv[1], "--vm=")
		g, ok := h.guests[name]
		if !ok {
			return nil, fail(argv, "vm_open: "+name+" could not be opened: No such file or directory")
		}
		delete(h.guests, name)
		h.mu.Unlock()
		g.destroy()
		h.mu.Lock()
		return nil, nil
	}
	return nil, fail(argv, "fake host: unexpected command")
}

func (h *fakeHost) Pipe(_ context.Context, from, to []string) ([]byte, error) {
	return nil, fail(from, "fake host: unexpected pipe to "+strings.Join(to, " "))
}

// Launch starts a fake guest for a bhyve command line: its name is the last argument, its home the
// 9p share's directory.
func (h *fakeHost) Launch(argv []string, console string) (Process, error) {
	name := argv[len(argv)-1]
	var home string
	for _, a := range argv {
		if v, ok := strings.CutPrefix(a, "5,virtio-9p,"+homeShare+"="); ok {
			home = v
		}
	}
	if home == "" {
		return nil, fmt.Errorf("fake bhyve: no 9p home in %q", argv)
	}
	g, err := startFakeGuest(home, console)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(h.vmmDir, name), nil, 0o600); err != nil {
		g.destroy()
		return nil, err
	}
	g.vmmFile = filepath.Join(h.vmmDir, name)
	h.mu.Lock()
	h.guests[name] = g
	h.mu.Unlock()
	return g, nil
}

func (h *fakeHost) agentAddr(vmName string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if g := h.guests[vmName]; g != nil {
		return g.addr
	}
	return "127.0.0.1:1"
}

// fakeGuest is a "VM": the fake guest process and everything in its mount namespace.
type fakeGuest struct {
	cmd     *exec.Cmd
	addr    string
	mntNS   string // readlink /proc/<pid>/ns/mnt
	vmmFile string
	done    chan struct{}
	once    sync.Once
}

func startFakeGuest(home, console string) (*fakeGuest, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	log, err := os.OpenFile(console, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd := exec.Command(self, fakeGuestArg, home)
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start fake guest: %w", err)
	}
	g := &fakeGuest{cmd: cmd, done: make(chan struct{})}
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

func (g *fakeGuest) Pid() int              { return g.cmd.Process.Pid }
func (g *fakeGuest) Done() <-chan struct{} { return g.done }

// Signal acts as on a bhyve process: STOP and CONT stop and continue the whole guest, KILL ends it.
func (g *fakeGuest) Signal(sig syscall.Signal) error {
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

// members returns the processes in the guest's mount namespace (zombies have none).
func (g *fakeGuest) members() []int {
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

func (g *fakeGuest) signalAll(sig syscall.Signal) {
	for _, pid := range g.members() {
		_ = syscall.Kill(pid, sig)
	}
}

// stopAll stops every process of the guest, again until none runs (one may fork meanwhile).
func (g *fakeGuest) stopAll() {
	for range 50 {
		g.signalAll(syscall.SIGSTOP)
		running := false
		for _, pid := range g.members() {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if i := strings.LastIndexByte(string(b), ')'); i >= 0 && len(b) > i+2 && b[i+2] != 'T' {
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
func (g *fakeGuest) destroy() {
	g.once.Do(func() {
		if g.mntNS != "" {
			for range 1000 {
				pids := g.members()
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

// newFakeVM creates a VM on a fake host for the tests below.
func newFakeVM(t *testing.T) *VM {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the fake guests need root: mount namespaces, a home owned by the sandbox user, processes run as it")
	}
	data := t.TempDir()
	h := newFakeHost(t, filepath.Join(data, "vmm"))
	r, err := New(Config{
		DataDir: data, VMDataset: "tank/fb/vm", ImageDataset: "tank/fb/img", VMMDir: h.vmmDir,
		Exec: h, Launcher: h, AgentClient: worldExecutable(t), AgentAddress: h.agentAddr,
		BootTimeout: 20 * time.Second, StopTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := r.Create(t.Context(), runtime.Spec{ID: "vm1", EnvVars: map[string]string{"GLOBAL": "g"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background()) })
	return sb.(*VM)
}

// The worker's ways of running a process in a VM, end to end through the real client and agent.
func TestVMProcesses(t *testing.T) {
	t.Parallel()
	vm := newFakeVM(t)
	run := func(cmd *exec.Cmd) string {
		t.Helper()
		var errb strings.Builder
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%q: %v: %s", cmd.Args, err, errb.String())
		}
		return string(out)
	}

	// As the sandbox user by default; as root when the caller sets root's credentials after Command,
	// as the worker does for a request's user (FileOwner).
	cmd, err := vm.Command(t.Context(), []string{"sh", "-c", `echo "$(id -u) $(id -g) $HOME $GLOBAL $LOCAL"`}, "", map[string]string{"LOCAL": "l"})
	if err != nil {
		t.Fatal(err)
	}
	if out := run(cmd); out != "1000 1000 /home/user g l\n" {
		t.Errorf("as the sandbox user: %q", out)
	}
	cmd, _ = vm.Command(t.Context(), []string{"id", "-u"}, "/tmp", nil)
	uid, gid, _ := vm.FileOwner("root")
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if out := run(cmd); out != "0\n" {
		t.Errorf("as root: %q", out)
	}

	// A file the worker writes for the sandbox user (owned as FileOwner says) is the user's in the guest.
	host, err := vm.HostPath("upload.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host, []byte("up\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	uid, gid, _ = vm.FileOwner("user")
	if err := os.Chown(host, uid, gid); err != nil {
		t.Fatal(err)
	}
	cmd, _ = vm.Command(t.Context(), []string{"sh", "-c", "echo more >> upload.txt && cat upload.txt"}, "", nil)
	if out := run(cmd); out != "up\nmore\n" {
		t.Errorf("appending to an upload: %q", out)
	}

	// As the code kernel does: its own *exec.Cmd with pipes, a guest interpreter and directory, Prepare.
	if err := os.Mkdir(filepath.Join(vm.home, "proj"), 0o755); err != nil {
		t.Fatal(err)
	}
	k := exec.Command("/bin/sh", "-c", `pwd; read line; echo "got $line $A"`)
	k.Dir = "/home/user/proj"
	k.Env = []string{"A=1", "PATH=/usr/bin:/bin"}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	k.Stdin = inR
	if err := vm.Prepare(k); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = inW.Write([]byte("hello\n"))
		inW.Close()
	}()
	if out := run(k); out != "/home/user/proj\ngot hello 1\n" {
		t.Errorf("prepared command: %q", out)
	}
	inR.Close()

	// Interrupting the client's process group (as the kernel driver and the process table do) reaches
	// the remote process; killing the client kills it.
	cmd, _ = vm.Command(context.Background(), []string{"sh", "-c", `trap 'echo interrupted; exit 3' INT; sh -c 'echo $$; exec sleep 30'`}, "", nil)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatal("no pid")
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if !sc.Scan() || sc.Text() != "interrupted" {
		t.Fatalf("after SIGINT: %q", sc.Text())
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cmd, _ = vm.Command(ctx, []string{"sh", "-c", "echo $$; exec sleep 1000"}, "", nil)
	out, _ = cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc = bufio.NewScanner(out)
	sc.Scan()
	pid, err := strconv.Atoi(sc.Text())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	_ = cmd.Wait()
	runtimetest.Eventually(t, func() bool { return !runtimetest.ProcessAlive(pid) }, "remote process %d survived its cancelled command", pid)
}

// Destroy ends the clients through their lifeline even when the guest does not close their connections
// (a destroyed VM sends nothing): here the guest lives on, and the clients still exit.
func TestDestroyEndsClientsOfASilentGuest(t *testing.T) {
	t.Parallel()
	vm := newFakeVM(t)
	cmd, err := vm.Command(context.Background(), []string{"sleep", "1000"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	vm.lifeW.Close() // what Destroy does first, without the VM's end
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != agent.ExitDestroyed {
			t.Fatalf("client: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client outlived the lifeline")
	}
}
