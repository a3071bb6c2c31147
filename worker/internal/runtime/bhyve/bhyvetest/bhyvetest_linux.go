package bhyvetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"fleetbox.dev/worker/internal/agent"
	"fleetbox.dev/worker/internal/runtime/bhyve"
)

// The roles the test binary is re-executed as, by its first argument.
const (
	agentExecArg = "agent-exec" // the agent client, as the worker binary dispatches it
	guestArg     = "bhyvetest-guest"
	probeArg     = "bhyvetest-probe"
)

// installed is set by Run: without it, a re-executed test binary would run the tests instead of its role.
var installed atomic.Bool

// Main is the TestMain of a package that uses this one: it runs the role the test binary was
// re-executed as (the agent client, a fake guest) or, normally, the tests.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain that does more: it must come first (the re-executed test binary runs what
// precedes it), and the TestMain exits with what it returns. In a re-executed test binary it does not
// return.
func Run(m *testing.M) int {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case agentExecArg:
			os.Exit(agent.ExecMain(os.Args[2:]))
		case guestArg:
			os.Exit(guestMain(os.Args[2:]))
		case probeArg:
			os.Exit(probeMain())
		}
	}
	installed.Store(true)
	code := m.Run()
	if client.dir != "" {
		os.RemoveAll(client.dir)
	}
	return code
}

// Require skips tb unless fake guests can run here: as root, with mount namespaces. It fails tb if the
// package's TestMain does not call Main.
func Require(tb testing.TB) {
	tb.Helper()
	if !installed.Load() {
		tb.Fatal("bhyvetest: the package's TestMain must call bhyvetest.Main (it runs the fake guests and agent clients)")
	}
	if os.Geteuid() != 0 {
		tb.Skip("bhyvetest: the fake guests need root: mount namespaces, a home owned by the sandbox user, processes run as it")
	}
	probe.once.Do(func() { probe.err = probeNamespace() })
	if probe.err != nil {
		tb.Skipf("bhyvetest: mount namespaces are unavailable: %v", probe.err)
	}
}

var probe struct {
	once sync.Once
	err  error
}

// probeNamespace starts the test binary in a mount namespace of its own, where it makes the mounts a
// fake guest makes (but the home's bind mount) and exits.
func probeNamespace() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, probeArg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil && len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	return err
}

func probeMain() int {
	if err := guestMounts(""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// NewRuntime returns a bhyve runtime on a new Host, configured by cfg with these defaults: DataDir a
// temporary directory, VMDataset tank/fb/vm, ImageDataset tank/fb/img, VMMDir DataDir/vmm, the agent
// client Client's copy of the test binary, boot and stop timeouts of 20 and 5 s, logs to tb's output.
// Exec, Launcher and AgentAddress are the Host's. It skips tb as Require does. Every fake guest left at
// the end of the test is destroyed.
func NewRuntime(tb testing.TB, cfg bhyve.Config) (*bhyve.Runtime, *Host) {
	tb.Helper()
	Require(tb)
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	if cfg.VMDataset == "" {
		cfg.VMDataset = "tank/fb/vm"
	}
	if cfg.ImageDataset == "" {
		cfg.ImageDataset = "tank/fb/img"
	}
	if cfg.VMMDir == "" {
		cfg.VMMDir = filepath.Join(cfg.DataDir, "vmm")
	}
	if cfg.AgentClient == "" {
		cfg.AgentClient = Client(tb)
	}
	if cfg.BootTimeout == 0 {
		cfg.BootTimeout = 20 * time.Second
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(tb.Output(), nil))
	}
	h := NewHost(tb, cfg.VMMDir)
	cfg.Exec, cfg.Launcher, cfg.AgentAddress = h, h, h.AgentAddr
	r, err := bhyve.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return r, h
}

// client is the copy of the test binary that the sandbox user may run (the test binary's own directory
// is the build's, closed to others): agent clients run as it. Run removes it after the tests.
var client struct {
	once      sync.Once
	dir, path string
	err       error
}

// Client returns the agent client for a bhyve.Config: a copy of the test binary that every user may
// run, made once per test binary.
func Client(tb testing.TB) string {
	tb.Helper()
	client.once.Do(func() {
		self, err := os.Executable()
		if err != nil {
			client.err = err
			return
		}
		if client.dir, err = os.MkdirTemp("", "bhyvetest-client-"); err != nil {
			client.err = err
			return
		}
		client.path = filepath.Join(client.dir, filepath.Base(self))
		client.err = errors.Join(os.Chmod(client.dir, 0o755), copyFile(self, client.path, 0o755))
	})
	if client.err != nil {
		tb.Fatal(client.err)
	}
	return client.path
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
