package bhyve

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fleetbox.dev/worker/internal/agent"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
)

// fakeLauncher records launches; its processes record signals and exit on SIGKILL or when exit is called.
type fakeLauncher struct {
	mu           sync.Mutex
	argv         []string
	console      string
	fail         error
	exitAtLaunch bool // the process exits at once, as a bhyve whose guest does not boot
	proc         *fakeProc
}

func (l *fakeLauncher) Launch(argv []string, console string) (Process, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.argv, l.console = argv, console
	if l.fail != nil {
		return nil, l.fail
	}
	l.proc = &fakeProc{done: make(chan struct{})}
	if l.exitAtLaunch {
		l.proc.exit()
	}
	return l.proc, nil
}

type fakeProc struct {
	mu      sync.Mutex
	signals []syscall.Signal
	done    chan struct{}
	once    sync.Once
}

func (p *fakeProc) Pid() int              { return 42 }
func (p *fakeProc) Done() <-chan struct{} { return p.done }
func (p *fakeProc) exit()                 { p.once.Do(func() { close(p.done) }) }
func (p *fakeProc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, sig)
	p.mu.Unlock()
	if sig == syscall.SIGKILL {
		p.exit()
	}
	return nil
}

func (p *fakeProc) got() []syscall.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.signals)
}

// testClient is the agent client the unit tests' commands name (they are not run).
const testClient = "/usr/local/bin/fleetbox-worker"

// newTest returns a runtime whose system commands are recorded, whose bhyve is a fakeLauncher, and whose
// "guests" answer with a real agent on loopback (serving nothing the unit tests run).
func newTest(t *testing.T, opts ...func(*Config)) (*Runtime, *executor.Recorder, *fakeLauncher, string) {
	t.Helper()
	rec := (&executor.Recorder{}).On("ifconfig tap create", executor.Result{Stdout: "tap3\n"})
	l := &fakeLauncher{}
	data := t.TempDir()
	addr := serveAgent(t)
	cfg := Config{DataDir: data, VMDataset: "tank/fb/vm", ImageDataset: "tank/fb/img", Exec: rec, Launcher: l, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		VMMDir: filepath.Join(data, "vmm"), StopTimeout: 50 * time.Millisecond, AgentClient: testClient,
		AgentAddress: func(string) string { return addr }}
	for _, o := range opts {
		o(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, rec, l, data
}

// serveAgent runs a real agent on a loopback port for the test's life and returns its address.
func serveAgent(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &agent.Server{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(func() { s.Close() })
	return lis.Addr().String()
}

func checkLines(t *testing.T, rec *executor.Recorder, want []string) {
	t.Helper()
	if got := rec.Lines(); !slices.Equal(got, want) {
		t.Errorf("commands:\n got %q\nwant %q", got, want)
	}
}

var (
	spec       = runtime.Spec{ID: "abc", TemplateID: "debian", CPUCount: 2, MemoryMB: 1024}
	cloneLine  = "zfs clone -o volmode=dev tank/fb/img/debian@base tank/fb/vm/abc"
	tapLines   = []string{"ifconfig tap create", "ifconfig tap3 description fbvm-abc", "ifconfig bridge1 addm tap3", "ifconfig bridge1 private tap3", "ifconfig tap3 up"}
	createCmds = append([]string{cloneLine}, tapLines...)
	failed     = executor.Result{Err: &executor.ExitError{Code: 1, Stderr: "boom"}}
)

func TestCreatePauseResumeDestroy(t *testing.T) {
	r, rec, l, data := newTest(t)
	sb, err := r.Create(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, createCmds)
	wantArgv := "bhyve -c 2 -m 1024M -H -P -D -s 0,hostbridge -s 1,lpc -s 2,virtio-blk,/dev/zvol/tank/fb/vm/abc " +
		"-s 3,virtio-net,tap3,mac=" + macFor("fbvm-abc") + " -s 4,virtio-rnd -s 5,virtio-9p,home=" + filepath.Join(data, "vms", "abc", "home") + " -l com1,stdio " +
		"-l bootrom,/usr/local/share/uefi-firmware/BHYVE_UEFI.fd fbvm-abc"
	if got := strings.Join(l.argv, " "); got != wantArgv {
		t.Errorf("bhyve argv:\n got %s\nwant %s", got, wantArgv)
	}
	if l.console != filepath.Join(data, "vms", "abc", "console.log") {
		t.Errorf("console %s", l.console)
	}
	vm := sb.(*VM)
	if err := vm.Pause(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := vm.Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := l.proc.got(); !slices.Equal(got, []syscall.Signal{syscall.SIGSTOP, syscall.SIGCONT}) {
		t.Errorf("signals %v", got)
	}
	if fi, err := os.Stat(filepath.Join(data, "vms", "abc", "home")); err != nil || !fi.IsDir() {
		t.Errorf("shared home: %v", err)
	}
	rec.Reset()
	go func() { // bhyve exits once its vmm instance is destroyed
		for !slices.Contains(rec.Lines(), "bhyvectl --vm=fbvm-abc --destroy") {
			time.Sleep(time.Millisecond)
		}
		l.proc.exit()
	}()
	if err := vm.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := vm.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, []string{"bhyvectl --vm=fbvm-abc --destroy", "ifconfig tap3 destroy", "zfs destroy -r tank/fb/vm/abc"})
	if _, err := os.Stat(filepath.Join(data, "vms", "abc")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("vm directory left: %v", err)
	}
	if err := vm.Pause(t.Context()); !errors.Is(err, runtime.ErrDestroyed) {
		t.Errorf("Pause after Destroy: %v", err)
	}
}

func TestDestroyKillsAStuckBhyve(t *testing.T) {
	r, rec, l, _ := newTest(t)
	sb, err := r.Create(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	rec.Reset()
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := l.proc.got(); !slices.Equal(got, []syscall.Signal{syscall.SIGCONT, syscall.SIGKILL}) {
		t.Errorf("signals %v, want CONT then KILL after the timeout", got)
	}
	checkLines(t, rec, []string{"bhyvectl --vm=fbvm-abc --destroy", "ifconfig tap3 destroy", "zfs destroy -r tank/fb/vm/abc"})
}

func TestCreateFailures(t *testing.T) {
	tests := []struct {
		name   string
		script func(*executor.Recorder, *fakeLauncher)
		want   []string
	}{
		{"clone fails: nothing left", func(r *executor.Recorder, _ *fakeLauncher) { r.On("zfs clone", failed) }, []string{cloneLine}},
		{"tap create fails: disk destroyed", func(r *executor.Recorder, _ *fakeLauncher) { r.On("ifconfig tap create", failed) },
			[]string{cloneLine, "ifconfig tap create", "zfs destroy -r tank/fb/vm/abc"}},
		{"bridge fails: tap and disk destroyed", func(r *executor.Recorder, _ *fakeLauncher) { r.On("ifconfig bridge1 addm", failed) },
			[]string{cloneLine, "ifconfig tap create", "ifconfig tap3 description fbvm-abc", "ifconfig bridge1 addm tap3",
				"ifconfig tap3 destroy", "zfs destroy -r tank/fb/vm/abc"}},
		{"bhyve fails: vmm and tap and disk destroyed", func(_ *executor.Recorder, l *fakeLauncher) { l.fail = errors.New("no vmm") },
			append(slices.Clone(createCmds), "bhyvectl --vm=fbvm-abc --destroy", "ifconfig tap3 destroy", "zfs destroy -r tank/fb/vm/abc")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, rec, l, data := newTest(t)
			tt.script(rec, l)
			if _, err := r.Create(t.Context(), spec); err == nil {
				t.Fatal("Create succeeded")
			}
			checkLines(t, rec, tt.want)
			if _, err := os.Stat(filepath.Join(data, "vms", "abc")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("vm directory left: %v", err)
			}
		})
	}
	r, _, _, _ := newTest(t)
	r.exec = (&executor.Recorder{}).Fail("zfs clone", "cannot create: dataset already exists")
	if _, err := r.Create(t.Context(), spec); !errors.Is(err, runtime.ErrExists) {
		t.Errorf("existing disk: %v", err)
	}
}

func TestCleanup(t *testing.T) {
	r, rec, _, data := newTest(t)
	for _, d := range []string{"vmm/fbvm-old", "vmm/fbvm-keep", "vmm/other"} {
		if err := os.MkdirAll(filepath.Join(data, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rec.On("ifconfig -g tap", executor.Result{Stdout: "tap0: flags=8902<BROADCAST>\n\tether 58:9c:fc:00:00:00\ntap3: flags=8902\ntap4: flags=1\n"}).
		On("ifconfig tap0", executor.Result{Stdout: "tap0: flags=0\n\tdescription: someone-else\n"}).
		On("ifconfig tap3", executor.Result{Stdout: "tap3: flags=0\n\tdescription: fbvm-old\n"}).
		On("ifconfig tap4", executor.Result{Stdout: "tap4: flags=0\n\tdescription: fbvm-keep\n"}).
		On("zfs list", executor.Result{Stdout: "tank/fb/vm\ntank/fb/vm/keep\ntank/fb/vm/old\ntank/fb/vm/disk\n"})
	if err := r.Cleanup(t.Context(), func(id string) bool { return id == "keep" }); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, []string{
		"ifconfig -g tap", "ifconfig tap0", "ifconfig tap3", "ifconfig tap4",
		"zfs list -H -o name -t volume -d 1 tank/fb/vm",
		"zfs destroy -r tank/fb/vm/disk",
		"bhyvectl --vm=fbvm-old --destroy", "ifconfig tap3 destroy", "zfs destroy -r tank/fb/vm/old",
	})
}

func TestParsersAndNew(t *testing.T) {
	if _, err := parseTap([]byte("bridge0\n")); err == nil {
		t.Error("non-tap accepted")
	}
	if m := macFor("fbvm-a"); m != macFor("fbvm-a") || m == macFor("fbvm-b") || !strings.HasPrefix(m, "02:fb:") {
		t.Errorf("macFor: %s", m)
	}
	for _, cfg := range []Config{{}, {DataDir: "/d"}, {DataDir: "rel", VMDataset: "a", ImageDataset: "b"},
		{DataDir: "/d", VMDataset: "a", ImageDataset: "b", Prefix: "X-"},
		{DataDir: "/d,x", VMDataset: "a", ImageDataset: "b"},
		{DataDir: "/d", VMDataset: "a", ImageDataset: "b", AgentClient: "worker"},
		{DataDir: "/d", VMDataset: "a", ImageDataset: "b", AgentPort: 70000}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestDestroyFailureRetries(t *testing.T) {
	r, rec, l, _ := newTest(t)
	sb, err := r.Create(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	l.proc.exit()
	rec.Reset()
	rec.Once("zfs destroy", failed)
	if err := sb.Destroy(t.Context()); err == nil || !strings.Contains(err.Error(), "destroy disk") {
		t.Fatalf("Destroy: %v, want the disk error", err)
	}
	rec.On("bhyvectl", executor.Result{Err: &executor.ExitError{Code: 1, Stderr: "vm_open: fbvm-abc could not be opened: No such file or directory"}})
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatalf("retry: %v", err)
	}
	want := []string{"bhyvectl --vm=fbvm-abc --destroy", "ifconfig tap3 destroy", "zfs destroy -r tank/fb/vm/abc"}
	checkLines(t, rec, append(slices.Clone(want), want...))
}

// The bhyve runtime has no snapshots: a Spec.Snapshot is refused before anything runs.
func TestCreateFromSnapshotNotSupported(t *testing.T) {
	r, rec, _, _ := newTest(t)
	s := spec
	s.Snapshot = "s1"
	if _, err := r.Create(t.Context(), s); !errors.Is(err, runtime.ErrNotSupported) {
		t.Fatalf("Create from a snapshot: %v, want ErrNotSupported", err)
	}
	checkLines(t, rec, nil)
}
