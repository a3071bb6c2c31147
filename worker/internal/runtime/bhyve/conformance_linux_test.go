package bhyve_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fleetbox.dev/worker/internal/agent"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/bhyve"
	"fleetbox.dev/worker/internal/runtime/bhyve/bhyvetest"
	"fleetbox.dev/worker/internal/runtime/runtimetest"
)

// This file runs the runtime conformance suite against the bhyve runtime on Linux, with everything real
// but the hypervisor (package bhyvetest): the VM's system commands go to a fake host, and each "VM" is a
// real agent in a mount namespace of its own whose /home/user is the VM's shared home. Processes run
// through the real agent client as the sandbox user, so Command, Prepare, Env, files through
// /home/user, pause, destroy and cleanup are tested end to end.

// TestMain makes this test binary the agent client ("agent-exec", as the worker binary dispatches it)
// and the fake guest.
func TestMain(m *testing.M) { bhyvetest.Main(m) }

func TestConformance(t *testing.T) {
	t.Parallel()
	bhyvetest.Require(t)
	runtimetest.Run(t, func(t *testing.T) runtime.Runtime {
		r, _ := bhyvetest.NewRuntime(t, bhyve.Config{})
		return r
	})
}

// newFakeVM creates a VM on a fake host for the tests below.
func newFakeVM(t *testing.T) *bhyve.VM {
	t.Helper()
	r, _ := bhyvetest.NewRuntime(t, bhyve.Config{})
	sb, err := r.Create(t.Context(), runtime.Spec{ID: "vm1", EnvVars: map[string]string{"GLOBAL": "g"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background()) })
	return sb.(*bhyve.VM)
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
	proj, err := vm.HostPath("/home/user/proj")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(proj, 0o755); err != nil {
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
	bhyve.CloseLifeline(vm) // what Destroy does first, without the VM's end
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
