package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func startZygote(tb testing.TB) *Zygote {
	tb.Helper()
	dir := tb.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := WriteModule(ctx, pythonPath(tb), dir); err != nil {
		tb.Fatal(err)
	}
	z, err := StartZygote(ctx, pythonPath(tb), dir, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { z.Close() })
	return z
}

// Kernels forked by the zygote behave like executed ones: their own directory, environment and process
// group, state across executions, interrupts, and Close.
func TestZygoteFork(t *testing.T) {
	t.Parallel()
	z := startZygote(t)
	dir := t.TempDir()
	k := startKernel(t, func(c *Config) {
		c.Zygote = z
		c.Dir = dir
		c.Env = append(c.Env, "FLEETBOX_TEST=forked")
		c.Prepare = func(cmd *exec.Cmd) error {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			return nil
		}
	})
	if ppid := parentOf(t, k.Pid()); ppid != z.cmd.Process.Pid {
		t.Fatalf("kernel's parent is %d, want the zygote %d", ppid, z.cmd.Process.Pid)
	}
	if !k.group {
		t.Error("forked kernel does not lead its process group")
	}
	execute(t, k, "x = 41", nil)
	r := mainResult(t, execute(t, k, "import os; (x + 1, os.getcwd(), os.environ['FLEETBOX_TEST'])", nil))
	if want := fmt.Sprintf("(42, '%s', 'forked')", dir); r == nil || r.text() != want {
		t.Fatalf("result %+v, want %s", r, want)
	}
	// Interrupts reach the forked kernel and its group (the shell's child too).
	for _, code := range []string{"while True: pass", "import os; os.system('sleep 30')"} {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		var evs []event
		if err := k.Execute(ctx, code, nil, collect(t, &evs)); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted %q: %v", code, err)
		}
	}
	if r := mainResult(t, execute(t, k, "x", nil)); r == nil || r.text() != "41" {
		t.Fatalf("after interrupt: %+v", r)
	}
	pid := k.Pid()
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("forked kernel %d still exists after Close: %v", pid, err)
	}
}

// A start the zygote cannot serve (a wrapped command) falls back to a fresh interpreter.
func TestZygoteFallback(t *testing.T) {
	t.Parallel()
	z := startZygote(t)
	k := startKernel(t, func(c *Config) {
		c.Zygote = z
		c.Prepare = func(cmd *exec.Cmd) error {
			cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), NoSetGroups: true}
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
			return nil
		}
	})
	if parentOf(t, k.Pid()) != os.Getpid() {
		t.Fatal("a start with attributes the zygote cannot give was forked anyway")
	}
	if r := mainResult(t, execute(t, k, "1+1", nil)); r == nil || r.text() != "2" {
		t.Fatalf("result %+v", r)
	}
}

func parentOf(tb testing.TB, pid int) int {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Skipf("needs /proc: %v", err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var ppid int
	fmt.Sscan(f[1], &ppid)
	return ppid
}

func BenchmarkStartZygote(b *testing.B) {
	z := startZygote(b)
	for b.Loop() {
		k, err := Start(context.Background(), Config{Python: pythonPath(b), Zygote: z, Dir: b.TempDir(), Env: []string{"LANG=C.UTF-8"}})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		k.Close()
		b.StartTimer()
	}
}
