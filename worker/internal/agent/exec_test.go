package agent

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fleetbox.dev/worker/internal/runtime/runtimetest"
)

// TestMain makes the test binary the agent client when its first argument is "agent-exec", as the
// worker binary dispatches it.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "agent-exec" {
		os.Exit(ExecMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// client returns an unstarted agent-exec process (this test binary) for argv on addr.
func client(t *testing.T, bin, addr string, flags []string, argv ...string) *exec.Cmd {
	t.Helper()
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"agent-exec", "-addr", addr}, flags...)
	cmd := exec.Command(bin, append(append(args, "--"), argv...)...)
	cmd.Env = []string{ExecEnvVar + "=" + EncodeEnv([]string{"PATH=/usr/bin:/bin", "FOO=from the header"}), "LEAK=host only"}
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if !errors.As(err, &ee) {
		t.Fatalf("client did not run: %v", err)
	}
	return ee.ExitCode()
}

func TestExecMain(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t)
	tests := []struct {
		name     string
		addr     string
		flags    []string
		argv     []string
		env      []string // the client's environment; nil: client's default
		stdin    string
		wantOut  string
		wantErr  string // contained in stderr
		wantCode int
	}{
		{name: "output and exit code", argv: []string{"sh", "-c", "echo out; echo err >&2; exit 5"}, wantOut: "out\n", wantErr: "err\n", wantCode: 5},
		{name: "stdin", argv: []string{"sh", "-c", "cat; echo"}, stdin: "abc", wantOut: "abc\n"},
		{name: "killed remotely", argv: []string{"sh", "-c", "kill -KILL $$"}, wantCode: 128 + int(syscall.SIGKILL)},
		{name: "dir", flags: []string{"-dir", "/usr"}, argv: []string{"pwd"}, wantOut: "/usr\n"},
		{name: "the header's env, not the client's", argv: []string{"sh", "-c", `echo "$FOO|${LEAK-}"`}, wantOut: "from the header|\n"},
		{name: "the client's env without the variable", argv: []string{"sh", "-c", `echo "$LEAK"`}, env: []string{"PATH=/usr/bin:/bin", "LEAK=own"}, wantOut: "own\n"},
		{name: "not found", argv: []string{"no-such-program"}, wantErr: "no-such-program: not found", wantCode: 127},
		{name: "bad env variable", argv: []string{"true"}, env: []string{ExecEnvVar + "=!!"}, wantErr: "decode", wantCode: ExitUsage},
		{name: "no addr", addr: "-", argv: []string{"true"}, wantErr: "usage", wantCode: ExitUsage},
		{name: "uid without gid", flags: []string{"-uid", "0"}, argv: []string{"true"}, wantErr: "usage", wantCode: ExitUsage},
		{name: "unreachable", addr: "127.0.0.1:1", argv: []string{"true"}, wantErr: "agent-exec:", wantCode: ExitAgent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := addr
			if tt.addr != "" {
				a = tt.addr
			}
			cmd := client(t, "", a, tt.flags, tt.argv...)
			if a == "-" {
				cmd.Args = slicesDelete(cmd.Args, "-addr", "-")
			}
			if tt.env != nil {
				cmd.Env = tt.env
			}
			cmd.Stdin = strings.NewReader(tt.stdin)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			code := exitCode(t, cmd.Run())
			if code != tt.wantCode || out.String() != tt.wantOut || !strings.Contains(errb.String(), tt.wantErr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, stderr containing %q", code, out.String(), errb.String(), tt.wantCode, tt.wantOut, tt.wantErr)
			}
		})
	}
}

// slicesDelete removes the adjacent words a, b from args.
func slicesDelete(args []string, a, b string) []string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == a && args[i+1] == b {
			return append(args[:i:i], args[i+2:]...)
		}
	}
	return args
}

// startClient starts a client whose remote process prints lines; it returns the client and the first line.
func startClient(t *testing.T, cmd *exec.Cmd) (*bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return bufio.NewScanner(out), &errb
}

// Signals sent to the client reach the remote process group.
func TestExecMainForwardsSignals(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1} {
		t.Run(SignalName(sig), func(t *testing.T) {
			t.Parallel()
			name := SignalName(sig)
			cmd := client(t, "", addr, nil, "sh", "-c", `trap 'echo trapped `+name+`; exit 9' `+name+`; echo ready; while :; do sleep 0.1; done`)
			sc, errb := startClient(t, cmd)
			if !sc.Scan() || sc.Text() != "ready" {
				t.Fatalf("first line %q; stderr %s", sc.Text(), errb)
			}
			// The client set up its handler before it connected, so before "ready".
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if !sc.Scan() || sc.Text() != "trapped "+name {
				t.Fatalf("after %s: %q", name, sc.Text())
			}
			if code := exitCode(t, cmd.Wait()); code != 9 {
				t.Fatalf("exit %d, want 9; stderr %s", code, errb)
			}
		})
	}
}

// When the lifeline closes (the sandbox was destroyed), the client ends the connection and exits; the
// agent kills the remote process.
func TestExecMainLifeline(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := client(t, "", addr, []string{"-lifeline-fd", "3"}, "sh", "-c", "echo $$; exec sleep 1000")
	cmd.ExtraFiles = []*os.File{r}
	sc, errb := startClient(t, cmd)
	if !sc.Scan() {
		t.Fatalf("no pid; stderr %s", errb)
	}
	pid, err := strconv.Atoi(sc.Text())
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCode(t, err); code != ExitDestroyed || !strings.Contains(errb.String(), "destroyed") {
			t.Fatalf("exit %d, stderr %q", code, errb)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client outlived its lifeline")
	}
	runtimetest.Eventually(t, func() bool { return gone(pid) }, "remote process %d survived the lifeline", pid)
}

// Killing the client (SIGKILL cannot be forwarded) ends the connection: the agent kills the group.
func TestExecMainKilled(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t)
	cmd := client(t, "", addr, nil, "sh", "-c", "sleep 1000 & echo $!; echo $$; wait")
	sc, errb := startClient(t, cmd)
	var pids []int
	for len(pids) < 2 && sc.Scan() {
		pid, _ := strconv.Atoi(sc.Text())
		pids = append(pids, pid)
	}
	if len(pids) != 2 {
		t.Fatalf("pids %v; stderr %s", pids, errb)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	for _, pid := range pids {
		runtimetest.Eventually(t, func() bool { return gone(pid) }, "remote process %d survived the client's SIGKILL", pid)
	}
}

// worldExecutable copies this test binary where any user may run it (the build directory is root's
// alone), for clients started with other credentials.
func worldExecutable(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "agent-client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "agent.test")
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// Without -uid/-gid the remote process runs as the client does: a caller picks the guest user by
// setting the client's credentials (as the worker does for a sandbox user).
func TestExecMainCredentials(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("switching credentials needs root")
	}
	addr, _ := startServer(t)
	bin := worldExecutable(t)
	tests := []struct {
		name  string
		cred  *syscall.Credential
		flags []string
		want  string
	}{
		{"as the client, root", nil, nil, "0 0\n"},
		{"as the client, 65534", &syscall.Credential{Uid: 65534, Gid: 65533}, nil, "65534 65533\n"},
		{"as the flags say", nil, []string{"-uid", "1000", "-gid", "1001"}, "1000 1001\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := client(t, bin, addr, tt.flags, "sh", "-c", `echo "$(id -u) $(id -g)"`)
			if tt.cred != nil {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: tt.cred}
			}
			var errb bytes.Buffer
			cmd.Stderr = &errb
			out, err := cmd.Output()
			if err != nil || string(out) != tt.want {
				t.Fatalf("%q, %v (stderr %s); want %q", out, err, errb.String(), tt.want)
			}
		})
	}
}
