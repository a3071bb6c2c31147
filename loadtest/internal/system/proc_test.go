package system

import (
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProcKillRestartTerminate(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	log := filepath.Join(t.TempDir(), "p.log")
	// A shell that prints, leaves a child in its process group and waits.
	p, err := StartProc(ProcConfig{Name: "p", Bin: "/bin/sh", Args: []string{"-c", "echo started; sleep 60 & wait"}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Terminate(time.Second) })
	waitFor(t, func() bool { return strings.Count(p.Tail(10), "started") == 1 })
	if p.Exited() {
		t.Fatalf("exited early: %v", p.ExitErr())
	}

	// Kill ends the process alone: the child in its group lives on.
	first := p.PID()
	p.Kill()
	if !p.Exited() {
		t.Fatal("not exited after Kill")
	}
	if err := syscall.Kill(-first, 0); err != nil {
		t.Fatalf("the group of a killed process is gone (%v): Kill must not signal the group", err)
	}
	_ = syscall.Kill(-first, syscall.SIGKILL)

	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if p.PID() == first {
		t.Fatal("same pid after a restart")
	}
	if err := p.Restart(); err == nil {
		t.Fatal("restart of a running process succeeded")
	}
	waitFor(t, func() bool { return strings.Count(p.Tail(10), "started") == 2 }) // the log is appended to

	// Terminate ends the whole group; sh exits on SIGTERM at once.
	second := p.PID()
	if !p.Terminate(5 * time.Second) {
		t.Error("sh did not exit on SIGTERM")
	}
	waitFor(t, func() bool { return syscall.Kill(-second, 0) != nil })
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
