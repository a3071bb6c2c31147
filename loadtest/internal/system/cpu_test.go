package system

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

func TestCPUOf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	before, err := CPUOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn ~150 ms of CPU in a child we wait for, and some in ourselves.
	if err := exec.Command("/bin/sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done").Run(); err != nil {
		t.Skipf("no /bin/sh loop: %v", err)
	}
	deadline := time.Now().Add(100 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	after, err := CPUOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	if d.Self < 50*time.Millisecond || d.Children <= 0 {
		t.Errorf("CPU delta %+v: want our own spin and the waited-for child counted", d)
	}
}

func TestRSSAndDescendants(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	rss, err := RSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Errorf("RSS = %d, %v", rss, err)
	}
	if _, err := PSS(os.Getpid()); err != nil {
		t.Logf("PSS unavailable: %v", err)
	}
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	found := false
	for _, pid := range Descendants(os.Getpid()) {
		found = found || pid == cmd.Process.Pid
	}
	if !found {
		t.Error("a child is not among our descendants")
	}
}

func TestMachineBusy(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	a, err := MachineBusy()
	if err != nil || a <= 0 {
		t.Fatalf("MachineBusy = %v, %v", a, err)
	}
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	if b, _ := MachineBusy(); b-a < 50*time.Millisecond {
		t.Errorf("100 ms of spinning moved the machine's busy time by %v", b-a)
	}
}
