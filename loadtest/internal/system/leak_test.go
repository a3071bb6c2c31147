package system

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitExit starts the wait for cmd and returns a channel closed when it exited.
func waitExit(cmd *exec.Cmd) <-chan struct{} {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return done
}

func exitsWithin(done <-chan struct{}, d time.Duration) bool {
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func TestSweepAndWatchdog(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the leak sweep reads /proc")
	}
	dir := t.TempDir()
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}

	// A process whose cwd is below dir is found and killed by the sweep.
	sleeper := exec.Command("sleep", "60")
	sleeper.Dir = dir
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := waitExit(sleeper)
	leaked := Sweep(dir, 200*time.Millisecond)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "sleep 60") {
		t.Fatalf("sweep found %v, want the sleep process", leaked)
	}
	if !exitsWithin(done, 10*time.Second) {
		t.Fatal("the swept process is still alive")
	}

	// The watchdog kills registered process groups, and processes in registered directories, when its
	// pipe closes without "done" (what happens when the test binary dies).
	wd, err := StartWatchdog()
	if err != nil {
		t.Fatal(err)
	}
	grp := exec.Command("sleep", "61")
	grp.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	inDir := exec.Command("sleep", "63")
	inDir.Dir = dir
	for _, c := range []*exec.Cmd{grp, inDir} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	gdone, ddone := waitExit(grp), waitExit(inDir)
	wd.WatchGroup(grp.Process.Pid)
	wd.WatchDir(dir)
	_ = wd.in.Close() // no "done": simulate our death
	if !exitsWithin(gdone, 15*time.Second) {
		_ = grp.Process.Kill()
		t.Error("the watchdog did not kill the registered process group")
	}
	if !exitsWithin(ddone, 15*time.Second) {
		_ = inDir.Process.Kill()
		t.Error("the watchdog did not kill the process working in the registered directory")
	}
	_ = wd.cmd.Wait()

	// With "done" the watchdog leaves everything alone.
	wd, err = StartWatchdog()
	if err != nil {
		t.Fatal(err)
	}
	keep := exec.Command("sleep", "62")
	keep.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	keep.Dir = dir
	if err := keep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = keep.Process.Kill(); _ = keep.Wait() }()
	wd.WatchGroup(keep.Process.Pid)
	wd.WatchDir(dir)
	wd.Release()
	if err := keep.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the released watchdog killed a process: %v", err)
	}
}
