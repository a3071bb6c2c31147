package bhyve

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fleetbox.dev/worker/internal/runtime"
)

// The unit table of HostPath: what the host reaches of a VM is its shared home, with symlinks followed
// as the guest follows them.
func TestHostPath(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	vm := &VM{id: "abc", home: home}
	for _, l := range []struct{ name, target string }{
		{"abs-in", "/home/user/sub"},
		{"abs-out", "/etc"},
		{"rel-in", "sub"},
		{"rel-via-home", "../user/sub"}, // leaves the share for /home and comes back
		{"rel-out", "../../etc/passwd"},
		{"up-to-home", ".."},
		{"dangling-in", "/home/user/new/file"},
		{"dangling-out", "/var/new"},
		{"loop", "loop"},
		{"host-path", home}, // a host path means nothing in the guest
		{"via-missing", "missing/../sub"},
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
		want string // relative to home; "-" means refused as outside the home, "!" refused otherwise
	}{
		{"/home/user", ""},
		{"", ""},
		{".", ""},
		{"a/b", "a/b"},
		{"/home/user/a/../b", "b"},
		{"/tmp/../home/user/x", "x"},
		{"/", "-"},
		{"/home", "-"},
		{"/home/other", "-"},
		{"/etc/passwd", "-"},
		{"/..", "!"},
		{"../../..", "!"},
		{"abs-in/f", "sub/f"},
		{"abs-out", "-"},
		{"abs-out/passwd", "-"},
		{"rel-in/f", "sub/f"},
		{"rel-via-home/f", "sub/f"},
		{"rel-out", "-"},
		{"up-to-home", "-"},
		{"up-to-home/user/sub", "sub"},
		{"dangling-in", "new/file"},
		{"dangling-out", "-"},
		{"loop", "!"},
		{"host-path", "-"},
		{"missing/../x", "x"}, // ".." in the path as given is applied first
		{"via-missing", "!"},  // ".." through a missing directory
	}
	for _, tt := range tests {
		got, err := vm.HostPath(tt.in)
		switch tt.want {
		case "-":
			if !errors.Is(err, runtime.ErrPathEscape) || !strings.Contains(err.Error(), "only /home/user is reachable from the host in a VM") {
				t.Errorf("HostPath(%q) = %q, %v; want the outside-the-home refusal", tt.in, got, err)
			}
		case "!":
			if err == nil || (strings.Contains(tt.in, "..") && !errors.Is(err, runtime.ErrPathEscape)) {
				t.Errorf("HostPath(%q) = %q, want an error", tt.in, got)
			}
		default:
			if want := filepath.Join(home, tt.want); err != nil || got != want {
				t.Errorf("HostPath(%q) = %q, %v; want %q", tt.in, got, err, want)
			}
		}
	}
}
