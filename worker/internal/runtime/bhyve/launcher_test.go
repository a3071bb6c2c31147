package bhyve

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExecLauncher(t *testing.T) {
	console := filepath.Join(t.TempDir(), "console.log")
	p, err := ExecLauncher{}.Launch([]string{"sh", "-c", "echo booted; exec sleep 30"}, console)
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid() <= 0 {
		t.Fatalf("pid %d", p.Pid())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, _ := os.ReadFile(console); strings.Contains(string(b), "booted") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("console never showed the output")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, sig := range []syscall.Signal{syscall.SIGSTOP, syscall.SIGCONT, syscall.SIGKILL} {
		if err := p.Signal(sig); err != nil {
			t.Fatalf("signal %v: %v", sig, err)
		}
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit after SIGKILL")
	}
	if err := p.Signal(syscall.SIGCONT); err == nil {
		t.Error("signal to an exited process succeeded")
	}
	if _, err := (ExecLauncher{}).Launch([]string{"/nonexistent/bhyve"}, console); err == nil {
		t.Error("missing program started")
	}
	if _, err := (ExecLauncher{}).Launch([]string{"true"}, filepath.Join(t.TempDir(), "no", "dir", "log")); err == nil {
		t.Error("console in a missing directory accepted")
	}
}
