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

// Run runs the conformance suite against runtimes made by newRuntime (one per subtest, so that the
// subtests run in parallel and a Cleanup in one cannot touch another's sandboxes). It uses only the
// runtime interfaces; where the semantics of runtimes differ it branches on Capabilities: with OwnRoot,
// processes see the sandbox's root as "/" (their home is /home/user, absolute symlink targets are
// sandbox paths); without it they see the host's file system. Optional interfaces (Pauser,
// Snapshotter, SnapshotStore, UsageReporter) are tested where implemented; their subtests skip, saying
// so, elsewhere.
func Run(t *testing.T, newRuntime func(t *testing.T) runtime.Runtime) {
	t.Run("Env", func(t *testing.T) {
		t.Parallel()
		rt := newRuntime(t)
		sb := create(t, rt, map[string]string{"FOO": "bar", "E2B_SANDBOX_ID": "spoofed"})
		env := map[string]string{}
		for _, kv := range sb.Env() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		for k, want := range map[string]string{"FOO": "bar", "E2B_SANDBOX": "true", "E2B_SANDBOX_ID": sb.ID(), "HOME": processHome(t, rt, sb)} {
			if env[k] != want {
				t.Errorf("env %s = %q, want %q", k, env[k], want)
			}
		}
	})
	t.Run("Command", func(t *testing.T) {
		t.Parallel()
		rt := newRuntime(t)
		sb := create(t, rt, map[string]string{"FOO": "bar"})
		cmd, err := sb.Command(t.Context(), []string{"sh", "-c", `pwd; echo "$E2B_SANDBOX_ID $FOO $ONE"`}, "", map[string]string{"ONE": "1"})
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		want := processHome(t, rt, sb) + "\n" + sb.ID() + " bar 1\n"
		if string(out) != want {
			t.Fatalf("output %q, want %q", out, want)
		}
		if _, err := sb.Command(t.Context(), []string{"sh"}, "/nonexistent/../../..", nil); err == nil {
			t.Fatal("cwd above the root accepted")
		}
	})
	t.Run("HostPath", func(t *testing.T) {
		t.Parallel()
		rt := newRuntime(t)
		testHostPath(t, create(t, rt, nil), rt.Capabilities().OwnRoot)
	})
	t.Run("Files", func(t *testing.T) {
		t.Parallel()
		rt := newRuntime(t)
		testFiles(t, create(t, rt, nil), rt.Capabilities().OwnRoot)
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
		root := hostRoot(t, sb)
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
		root := hostRoot(t, gone)
		if err := rt.Cleanup(t.Context(), func(id string) bool { return id == kept.ID() }); err != nil {
			t.Fatal(err)
		}
		for _, pid := range pids {
			Eventually(t, func() bool { return !ProcessAlive(pid) }, "process %d survived Cleanup", pid)
		}
		if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("root %s survived Cleanup: %v", root, err)
		}
		if out := output(t, kept, "echo", "ok"); out != "ok\n" {
			t.Fatalf("kept sandbox broken: %q", out)
		}
	})
	t.Run("PauseResume", func(t *testing.T) {
		t.Parallel()
		testPauseResume(t, newRuntime(t))
	})
	t.Run("Snapshot", func(t *testing.T) {
		t.Parallel()
		testSnapshot(t, newRuntime(t))
	})
	t.Run("Usage", func(t *testing.T) {
		t.Parallel()
		testUsage(t, newRuntime(t))
	})
}

// homeOnly reports whether sb's HostPath reaches only /home/user (ErrPathEscape for "/").
func homeOnly(sb runtime.Sandbox) bool {
	_, err := sb.HostPath("/")
	return errors.Is(err, runtime.ErrPathEscape)
}

// hostRoot is the host directory that holds all of sb the host reaches: its root, or its home if that
// is all.
func hostRoot(t *testing.T, sb runtime.Sandbox) string {
	t.Helper()
	p := "/"
	if homeOnly(sb) {
		p = runtime.SandboxHome
	}
	root, err := sb.HostPath(p)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// processHome is the sandbox's home directory as its processes see it (pwd, $HOME).
func processHome(t *testing.T, rt runtime.Runtime, sb runtime.Sandbox) string {
	t.Helper()
	if rt.Capabilities().OwnRoot {
		return runtime.SandboxHome
	}
	home, err := sb.HostPath(runtime.SandboxHome)
	if err != nil {
		t.Fatal(err)
	}
	return home
}

// testHostPath checks HostPath against a table of paths and symlinks. Without OwnRoot an absolute
// symlink target is a host path (the link's processes follow it there), so links to anything outside the
// root are refused; with OwnRoot it is a sandbox path, so every link resolves inside the root and
// nothing but ".." above "/" in the path itself (and a loop) is refused. A home-only runtime refuses
// every path, given or reached through a link, outside /home/user.
func testHostPath(t *testing.T, sb runtime.Sandbox, ownRoot bool) {
	only := homeOnly(sb)
	var root, home string
	if only {
		home = hostRoot(t, sb)
	} else {
		root = hostRoot(t, sb)
		home = filepath.Join(root, "home", "user")
	}
	outside := t.TempDir()
	tmpTarget := filepath.Join(root, "tmp") // absolute host path inside the root
	if ownRoot {
		tmpTarget = "/tmp" // the same directory, as the sandbox names it
	}
	for _, l := range []struct{ name, target string }{
		{"out", outside},               // absolute, outside the root on the host
		{"out-rel", "../../../.."},     // relative, climbs out
		{"dangling", outside + "/new"}, // does not exist yet, outside on the host
		{"in", "/home/user/sub"},       // absolute: the host's /home/user/sub, or the sandbox's
		{"in-rel", "sub"},              // relative, inside
		{"loop", "loop"},               // a loop
		{"tmp", tmpTarget},
	} {
		if err := os.Symlink(l.target, filepath.Join(home, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(home, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in string
		// shared is the answer without OwnRoot, own with it, homeOnly for a home-only runtime (which has
		// its own root); "" means refused.
		shared, own, homeOnly string
	}{
		{"/", root, root, ""},
		{"/home/user", home, home, home},
		{"/home/user/a/b.txt", filepath.Join(home, "a/b.txt"), filepath.Join(home, "a/b.txt"), filepath.Join(home, "a/b.txt")},
		{"a.txt", filepath.Join(home, "a.txt"), filepath.Join(home, "a.txt"), filepath.Join(home, "a.txt")},
		{"/home/user/../user/./x", filepath.Join(home, "x"), filepath.Join(home, "x"), filepath.Join(home, "x")},
		{"/..", "", "", ""},
		{"/home/../../etc/passwd", "", "", ""},
		{"../../../x", "", "", ""},
		{"/home/user/out", "", filepath.Join(root, outside), ""},
		{"/home/user/out/file", "", filepath.Join(root, outside, "file"), ""},
		{"/home/user/out-rel", "", root, ""},
		{"/home/user/out-rel/etc/x", "", filepath.Join(root, "etc/x"), ""},
		{"/home/user/dangling", "", filepath.Join(root, outside, "new"), ""},
		{"/home/user/in", "", filepath.Join(home, "sub"), filepath.Join(home, "sub")},
		{"/home/user/in/f", "", filepath.Join(home, "sub/f"), filepath.Join(home, "sub/f")},
		{"/home/user/in-rel/f", filepath.Join(home, "sub/f"), filepath.Join(home, "sub/f"), filepath.Join(home, "sub/f")},
		{"/home/user/loop", "", "", ""},
		{"/home/user/tmp/f", filepath.Join(root, "tmp/f"), filepath.Join(root, "tmp/f"), ""},
	}
	for _, tt := range tests {
		want := tt.shared
		switch {
		case only:
			want = tt.homeOnly
		case ownRoot:
			want = tt.own
		}
		got, err := sb.HostPath(tt.in)
		switch {
		case want == "" && err == nil:
			t.Errorf("HostPath(%q) = %q, want refusal", tt.in, got)
		case want != "" && (err != nil || got != want):
			t.Errorf("HostPath(%q) = %q, %v; want %q", tt.in, got, err, want)
		}
	}
}

// testFiles checks that HostPath and the sandbox's processes see the same files, both ways and through an
// absolute symlink (which the two must resolve alike).
func testFiles(t *testing.T, sb runtime.Sandbox, ownRoot bool) {
	// The sandbox makes the directory, so that its user may write in it (the test may be root).
	if out := output(t, sb, "sh", "-c", "mkdir -p files && printf 'from the sandbox' > files/out.txt && echo done"); out != "done\n" {
		t.Fatalf("writing in the sandbox: %q", out)
	}
	for _, p := range []string{"/home/user/files/out.txt", "files/out.txt"} {
		host, err := sb.HostPath(p)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(host); err != nil || string(b) != "from the sandbox" {
			t.Errorf("read %s (%s) on the host: %q, %v", p, host, b, err)
		}
	}
	in, err := sb.HostPath("/home/user/files/in.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := output(t, sb, "cat", "files/in.txt"); out != "from the host\n" {
		t.Errorf("cat in the sandbox: %q", out)
	}

	target := "/home/user/files"
	if !ownRoot {
		target, _ = sb.HostPath(target)
	}
	link, err := sb.HostPath("/home/user/abs")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	via, err := sb.HostPath("/home/user/abs/via-link.txt")
	if err != nil {
		t.Fatalf("HostPath through a link to %s: %v", target, err)
	}
	if err := os.WriteFile(via, []byte("via the link\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := output(t, sb, "cat", "files/via-link.txt"); out != "via the link\n" {
		t.Errorf("file written through the link, read in the sandbox: %q", out)
	}
}

func create(t *testing.T, rt runtime.Runtime, env map[string]string) runtime.Sandbox {
	t.Helper()
	return createSpec(t, rt, runtime.Spec{ID: schema.NewSandboxID(), TemplateID: "base", EnvVars: env})
}

func createSpec(t *testing.T, rt runtime.Runtime, spec runtime.Spec) runtime.Sandbox {
	t.Helper()
	sb, err := rt.Create(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background()) })
	return sb
}

// output runs argv in sb (in its home) and returns its standard output; it fails the test if the command
// fails.
func output(t *testing.T, sb runtime.Sandbox, argv ...string) string {
	t.Helper()
	cmd, err := sb.Command(t.Context(), argv, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%q: %v: %s", argv, err, stderr.String())
	}
	return string(out)
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
