package bhyve

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"fleetbox.dev/worker/internal/agent"
	"fleetbox.dev/worker/internal/runtime"
)

func createVM(t *testing.T) (*VM, *fakeLauncher) {
	t.Helper()
	r, _, l, _ := newTest(t)
	s := spec
	s.EnvVars = map[string]string{"FOO": "bar", "E2B_SANDBOX_ID": "spoofed"}
	sb, err := r.Create(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.proc.exit()
		_ = sb.Destroy(t.Context())
	})
	return sb.(*VM), l
}

// clientArgv splits an agent client's command line into its flags and the guest argv.
func clientArgv(t *testing.T, vm *VM, cmd *exec.Cmd) (flags map[string]string, argv []string) {
	t.Helper()
	if cmd.Path != testClient || len(cmd.Args) < 3 || cmd.Args[0] != testClient || cmd.Args[1] != "agent-exec" {
		t.Fatalf("not an agent client: %s %q", cmd.Path, cmd.Args)
	}
	i := slices.Index(cmd.Args, "--")
	flags = map[string]string{}
	for j := 2; j+1 < i; j += 2 {
		flags[cmd.Args[j]] = cmd.Args[j+1]
	}
	if flags["-addr"] != vm.AgentAddr() {
		t.Errorf("-addr %s, want %s", flags["-addr"], vm.AgentAddr())
	}
	return flags, cmd.Args[i+1:]
}

func guestEnvOf(t *testing.T, cmd *exec.Cmd) []string {
	t.Helper()
	if len(cmd.Env) != 1 || !strings.HasPrefix(cmd.Env[0], agent.ExecEnvVar+"=") {
		t.Fatalf("client env %q: want only %s", cmd.Env, agent.ExecEnvVar)
	}
	env, err := agent.DecodeEnv(strings.TrimPrefix(cmd.Env[0], agent.ExecEnvVar+"="))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestCommand(t *testing.T) {
	t.Parallel()
	vm, _ := createVM(t)
	tests := []struct {
		cwd, wantDir string
	}{
		{"", "/home/user"},
		{"sub/dir", "/home/user/sub/dir"},
		{"/tmp", "/tmp"},
		{"/home/user/../../etc", "/etc"}, // the guest's own root: any directory
	}
	for _, tt := range tests {
		cmd, err := vm.Command(t.Context(), []string{"python3", "-c", "print(1)"}, tt.cwd, map[string]string{"ONE": "1", "E2B_SANDBOX": "no"})
		if err != nil {
			t.Fatal(err)
		}
		flags, argv := clientArgv(t, vm, cmd)
		if flags["-dir"] != tt.wantDir || flags["-lifeline-fd"] != "3" {
			t.Errorf("cwd %q: flags %v", tt.cwd, flags)
		}
		if !slices.Equal(argv, []string{"python3", "-c", "print(1)"}) {
			t.Errorf("argv %q", argv)
		}
		env := guestEnvOf(t, cmd)
		for _, want := range []string{"HOME=/home/user", "PATH=" + GuestPath, "FOO=bar", "ONE=1", "E2B_SANDBOX=true", "E2B_SANDBOX_ID=abc"} {
			if !slices.Contains(env, want) {
				t.Errorf("guest env %q lacks %s", env, want)
			}
		}
		if runtime.EnvValue(env, "E2B_SANDBOX_ID") != "abc" {
			t.Errorf("E2B_SANDBOX_ID spoofed: %q", env)
		}
		if cmd.Dir != "" || len(cmd.ExtraFiles) != 1 || cmd.ExtraFiles[0] != vm.lifeR {
			t.Errorf("dir %q, extra files %v", cmd.Dir, cmd.ExtraFiles)
		}
		a := cmd.SysProcAttr
		if a == nil || !a.Setpgid || a.Credential == nil || a.Credential.Uid != 1000 || a.Credential.Gid != 1000 {
			t.Errorf("process attributes %+v", a)
		}
	}
	for _, bad := range []string{"/..", "../../.."} {
		if _, err := vm.Command(t.Context(), []string{"true"}, bad, nil); !errors.Is(err, runtime.ErrPathEscape) {
			t.Errorf("cwd %q: %v", bad, err)
		}
	}
	if _, err := vm.Command(t.Context(), nil, "", nil); err == nil {
		t.Error("empty argv accepted")
	}
}

func TestPrepare(t *testing.T) {
	t.Parallel()
	vm, _ := createVM(t)
	keep, keepW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keep.Close(); keepW.Close() })

	// As the code kernel builds it: an absolute guest interpreter, a guest directory and environment,
	// an extra file of its own.
	cmd := exec.Command("/usr/local/bin/python3", "-u", "-c", "pass")
	cmd.Dir = "/home/user/proj"
	cmd.Env = []string{"A=1"}
	cmd.ExtraFiles = []*os.File{keep}
	if err := vm.Prepare(cmd); err != nil {
		t.Fatal(err)
	}
	flags, argv := clientArgv(t, vm, cmd)
	if !slices.Equal(argv, []string{"/usr/local/bin/python3", "-u", "-c", "pass"}) || flags["-dir"] != "/home/user/proj" || flags["-lifeline-fd"] != "4" {
		t.Errorf("argv %q, flags %v", argv, flags)
	}
	if env := guestEnvOf(t, cmd); !slices.Equal(env, []string{"A=1"}) {
		t.Errorf("env %q", env)
	}
	if len(cmd.ExtraFiles) != 2 || cmd.ExtraFiles[0] != keep || cmd.ExtraFiles[1] != vm.lifeR {
		t.Errorf("extra files %v", cmd.ExtraFiles)
	}
	before := slices.Clone(cmd.Args)
	if err := vm.Prepare(cmd); err != nil || !slices.Equal(cmd.Args, before) || len(cmd.ExtraFiles) != 2 {
		t.Errorf("second Prepare changed the command: %q, %v", cmd.Args, err)
	}

	// A bare name is the guest's to look up, even if the host found it (or did not); defaults for the
	// rest; the caller's credentials (root) are kept.
	for _, name := range []string{"sh", "no-such-program-on-the-host"} {
		cmd := exec.Command(name, "-c", "id")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{}}
		if err := vm.Prepare(cmd); err != nil {
			t.Fatal(err)
		}
		flags, argv := clientArgv(t, vm, cmd)
		if !slices.Equal(argv, []string{name, "-c", "id"}) || flags["-dir"] != "/home/user" || cmd.Err != nil {
			t.Errorf("%s: argv %q, flags %v, err %v", name, argv, flags, cmd.Err)
		}
		if env := guestEnvOf(t, cmd); !slices.Equal(env, vm.Env()) {
			t.Errorf("env %q", env)
		}
		if c := cmd.SysProcAttr.Credential; c.Uid != 0 || c.Gid != 0 || !cmd.SysProcAttr.Setpgid {
			t.Errorf("attributes %+v", cmd.SysProcAttr)
		}
	}
	bad := exec.Command("true")
	bad.Dir = "/../.."
	if err := vm.Prepare(bad); !errors.Is(err, runtime.ErrPathEscape) {
		t.Errorf("dir above the root: %v", err)
	}
}

func TestCommandAfterDestroy(t *testing.T) {
	t.Parallel()
	vm, l := createVM(t)
	l.proc.exit()
	if err := vm.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Command(t.Context(), []string{"true"}, "", nil); !errors.Is(err, runtime.ErrDestroyed) {
		t.Errorf("Command: %v", err)
	}
	if err := vm.Prepare(exec.Command("true")); !errors.Is(err, runtime.ErrDestroyed) {
		t.Errorf("Prepare: %v", err)
	}
}

func TestEnvAndOwners(t *testing.T) {
	t.Parallel()
	vm, _ := createVM(t)
	env := vm.Env()
	env[0] = "changed"
	if vm.Env()[0] == "changed" {
		t.Error("Env returned its own slice")
	}
	for user, want := range map[string][3]int{"": {1000, 1000, 1}, "user": {1000, 1000, 1}, "root": {0, 0, 1}, "bob": {0, 0, 0}} {
		uid, gid, ok := vm.FileOwner(user)
		if [3]int{uid, gid, map[bool]int{true: 1}[ok]} != want {
			t.Errorf("FileOwner(%q) = %d, %d, %v", user, uid, gid, ok)
		}
	}
	for _, tt := range []struct {
		uid, gid     uint32
		owner, group string
	}{{0, 0, "root", "wheel"}, {1000, 1000, "user", "user"}, {1001, 5, "", ""}} {
		if o, g := vm.OwnerNames(tt.uid, tt.gid); o != tt.owner || g != tt.group {
			t.Errorf("OwnerNames(%d, %d) = %q, %q", tt.uid, tt.gid, o, g)
		}
	}
}
