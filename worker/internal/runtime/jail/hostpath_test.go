package jail

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"fleetbox.dev/worker/internal/runtime"
)

func TestHostPathChrootSemantics(t *testing.T) {
	root := t.TempDir()
	root, _ = filepath.EvalSymlinks(root)
	for _, d := range []string{"home/user", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"home/user/abs":    "/etc",        // absolute: the jail's /etc
		"home/user/up":     "../../../..", // climbs to the jail's root, no further
		"home/user/hostly": "/etc/passwd",
		"home/user/loop":   "loop",
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	sb := &Sandbox{root: root}
	tests := []struct {
		in, want string
		err      error
	}{
		{in: "/", want: root},
		{in: "x.txt", want: filepath.Join(root, "home/user/x.txt")},
		{in: "/home/user/abs/hosts", want: filepath.Join(root, "etc/hosts")},
		{in: "/home/user/up", want: root},
		{in: "/home/user/up/etc", want: filepath.Join(root, "etc")},
		{in: "/home/user/hostly", want: filepath.Join(root, "etc/passwd")},
		{in: "/new/dir/file", want: filepath.Join(root, "new/dir/file")},
		{in: "/../etc", err: runtime.ErrPathEscape},
		{in: "../../../x", err: runtime.ErrPathEscape},
		{in: "/home/user/loop", err: errors.New("loop")},
	}
	for _, tt := range tests {
		got, err := sb.HostPath(tt.in)
		switch {
		case tt.err != nil && err == nil:
			t.Errorf("HostPath(%q) = %q, want error", tt.in, got)
		case tt.err != nil && errors.Is(tt.err, runtime.ErrPathEscape) && !errors.Is(err, runtime.ErrPathEscape):
			t.Errorf("HostPath(%q) error %v, want ErrPathEscape", tt.in, err)
		case tt.err == nil && (err != nil || got != tt.want):
			t.Errorf("HostPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestOwnerNames(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("passwd", "# comment\nroot:*:0:0:Charlie:/root:/bin/sh\nuser:*:1000:1000:sandbox user:/home/user:/bin/sh\n")
	write("group", "wheel:*:0:root\nuser:*:1000:\n")
	sb := &Sandbox{root: root}
	if o, g := sb.OwnerNames(1000, 1000); o != "user" || g != "user" {
		t.Errorf("1000:1000 = %q:%q", o, g)
	}
	if o, g := sb.OwnerNames(0, 0); o != "root" || g != "wheel" {
		t.Errorf("0:0 = %q:%q", o, g)
	}
	if o, g := sb.OwnerNames(7, 7); o != "" || g != "" {
		t.Errorf("7:7 = %q:%q", o, g)
	}
}
