// Package runtimetest is the conformance suite every runtime.Runtime passes (as litestream's
// RunWithReplicaClient and nomad's driver harness): Run drives a runtime through the contract each
// method documents, with real processes. It also has helpers to tell whether processes still live.
package runtimetest

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
)

// Run runs the conformance suite against runtimes made by newRuntime (one per subtest).
func Run(t *testing.T, newRuntime func(t *testing.T) runtime.Runtime) {
	t.Run("Env", func(t *testing.T) {
		t.Parallel()
		sb := create(t, newRuntime(t), map[string]string{"FOO": "bar", "E2B_SANDBOX_ID": "spoofed"})
		env := map[string]string{}
		for _, kv := range sb.Env() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		home, err := sb.HostPath(runtime.SandboxHome)
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{"FOO": "bar", "E2B_SANDBOX": "true", "E2B_SANDBOX_ID": sb.ID(), "HOME": home} {
			if env[k] != want {
				t.Errorf("env %s = %q, want %q", k, env[k], want)
			}
		}
	})
	t.Run("Command", func(t *testing.T) {
		t.Parallel()
		sb := create(t, newRuntime(t), map[string]string{"FOO": "bar"})
		cmd, err := sb.Command(t.Context(), []string{"sh", "-c", `pwd; echo "$E2B_SANDBOX_ID $FOO $ONE"`}, "", map[string]string{"ONE": "1"})
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		home, _ := sb.HostPath(runtime.SandboxHome)
		want := home + "\n" + sb.ID() + " bar 1\n"
		if string(out) != want {
			t.Fatalf("output %q, want %q", out, want)
		}
		if _, err := sb.Command(t.Context(), []string{"sh"}, "/nonexistent/../../..", nil); err == nil {
			t.Fatal("cwd above the root accepted")
		}
	})
	t.Run("HostPath", func(t *testing.T) {
		t.Parallel()
		testHostPath(t, create(t, newRuntime(t), nil))
	})
	t.Run("CreateTwice", func(t *testing.T) {
		t.Parallel()
		rt := newRuntime(t)
		sb := create(t, rt, nil)
		if _, err := rt.Create(t.Context(), runtime.Spec{ID: sb.ID()}); !errors.Is(err, runtime.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
	})
	t.Run("DestroyKillsEverything", func(t *testing.T) {
		t.Parallel()
		sb := create(t, newRuntime(t), nil)
		root, _ := sb.HostPath("/")
		// A foreground process and a background child it does not wait for.
		pids := startSleepers(t, sb)
		var wg sync.WaitGroup
		for range 3 { // concurrent calls are safe and all succeed
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := sb.Destroy(t.Context()); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for _, pid := range pids {
			Eventually(t, func() bool { return !ProcessAlive(pid) }, "process %d still alive after Destroy", pid)
		}
		if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("root %s still exists: %v", root, err)
		}
		if err := sb.Destroy(t.Context()); err != nil {
			t.Fatalf("Destroy is not idempotent: %v", err)
		}
		if _, err := sb.Command(t.Context(), []string{"true"}, "", nil); err == nil {
			t.Fatal("Command after Destroy succeeded")
		}
	})
	t.Run("Cleanup", func(t *testing.T) {
		t.Parallel()
		rt := newRuntime(t)
		gone, kept := create(t, rt, nil), create(t, rt, nil)
		pids := startSleepers(t, gone)
		root, _ := gone.HostPath("/")
		if err := rt.Cleanup(t.Context(), func(id string) bool { return id == kept.ID() }); err != nil {
			t.Fatal(err)
		}
		for _, pid := range pids {
			Eventually(t, func() bool { return !ProcessAlive(pid) }, "process %d survived Cleanup", pid)
		}
		if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("root %s survived Cleanup: %v", root, err)
		}
		if out, err := mustCommand(t, kept, "echo", "ok").Output(); err != nil || string(out) != "ok\n" {
			t.Fatalf("kept sandbox broken: %q %v", out, err)
		}
	})
}

func testHostPath(t *testing.T, sb runtime.Sandbox) {
	root, err := sb.HostPath("/")
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(root, "home", "user")
	outside := t.TempDir()
	for _, l := range []struct{ name, target string }{
		{"out", outside},                    // absolute, outside
		{"out-rel", "../../../.."},          // relative, climbs out
		{"dangling", outside + "/new"},      // does not exist yet, outside
		{"in", "/home/user/sub"},            // absolute targets are host paths (no chroot): outside
		{"in-rel", "sub"},                   // relative, inside
		{"loop", "loop"},                    // a loop
		{"tmp", filepath.Join(root, "tmp")}, // absolute host path inside the root
	} {
		if err := os.Symlink(l.target, filepath.Join(home, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(home, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   string
		want string // "" means refused
	}{
		{"/", root},
		{"/home/user", home},
		{"/home/user/a/b.txt", filepath.Join(home, "a/b.txt")},
		{"a.txt", filepath.Join(home, "a.txt")},
		{"/home/user/../user/./x", filepath.Join(home, "x")},
		{"/..", ""},
		{"/home/../../etc/passwd", ""},
		{"../../../x", ""},
		{"/home/user/out", ""},
		{"/home/user/out/file", ""},
		{"/home/user/out-rel", ""},
		{"/home/user/dangling", ""},
		{"/home/user/in", ""}, // /home/user/sub on the host is outside the root
		{"/home/user/in-rel/f", filepath.Join(home, "sub/f")},
		{"/home/user/loop", ""},
		{"/home/user/tmp/f", filepath.Join(root, "tmp/f")},
	}
	for _, tt := range tests {
		got, err := sb.HostPath(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("HostPath(%q) = %q, want refusal", tt.in, got)
		case tt.want != "" && (err != nil || got != tt.want):
			t.Errorf("HostPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func create(t *testing.T, rt runtime.Runtime, env map[string]string) runtime.Sandbox {
	t.Helper()
	sb, err := rt.Create(t.Context(), runtime.Spec{ID: schema.NewSandboxID(), TemplateID: "base", EnvVars: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background()) })
	return sb
}

func mustCommand(t *testing.T, sb runtime.Sandbox, argv ...string) interface {
	Output() ([]byte, error)
} {
	t.Helper()
	cmd, err := sb.Command(t.Context(), argv, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// startSleepers starts a process in sb that leaves a background child behind, and returns both pids.
func startSleepers(t *testing.T, sb runtime.Sandbox) []int {
	t.Helper()
	cmd, err := sb.Command(context.Background(), []string{"sh", "-c", `sleep 1000 & echo $!; echo $$; exec sleep 1001`}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var pids []int
	for len(pids) < 2 && sc.Scan() {
		pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	go func() { _ = cmd.Wait() }() // only after the reads: Wait closes the pipe
	if len(pids) != 2 {
		t.Fatalf("sleepers: got pids %v", pids)
	}
	for _, pid := range pids {
		if !ProcessAlive(pid) {
			t.Fatalf("sleeper %d not running", pid)
		}
	}
	return pids
}

// Eventually polls cond for up to 10 s and fails the test with the message if it never holds.
func Eventually(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
