package runtime

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestResolveRooted(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, d := range []string{"sub", "dir"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{
		"abs-in":  "/home/user/sub", // a sandbox path: inside when base is /home/user
		"abs-etc": "/etc",
		"rel-up":  "../../..", // climbs to "/", never above
		"loop":    "loop",
		"via-gap": "missing/../sub", // ".." after a missing component: missing in the sandbox too
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		base, in string
		want     string // "" with wantErr
		wantErr  error
	}{
		{"/home/user", "/home/user", root, nil},
		{"/home/user", "/home/user/sub/x", filepath.Join(root, "sub/x"), nil},
		{"/home/user", "/home/user/abs-in/f", filepath.Join(root, "sub/f"), nil},
		{"/home/user", "/home/user/new/a/b", filepath.Join(root, "new/a/b"), nil},
		{"/home/user", "/", "", ErrPathEscape},
		{"/home/user", "/home", "", ErrPathEscape},
		{"/home/user", "/etc/passwd", "", ErrPathEscape},
		{"/home/user", "/home/user/abs-etc/passwd", "", ErrPathEscape},
		{"/home/user", "/home/user/rel-up", "", ErrPathEscape},
		{"/home/user", "/home/user/via-gap", "", fs.ErrNotExist},
		{"/", "/", root, nil},
		{"/", "/dir/../sub/x", filepath.Join(root, "sub/x"), nil},
		{"/", "/rel-up/sub", filepath.Join(root, "sub"), nil}, // ".." stops at the root
		{"/", "/abs-etc/passwd", filepath.Join(root, "etc/passwd"), nil},
	}
	for _, tt := range tests {
		parts, err := PathComponents(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ResolveRooted(root, tt.base, parts)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("base %s: %s = %q, %v; want %v", tt.base, tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("base %s: %s = %q, %v; want %q", tt.base, tt.in, got, err, tt.want)
		}
	}
	parts, _ := PathComponents("/loop/x")
	if _, err := ResolveRooted(root, "/", parts); err == nil {
		t.Error("a symlink loop resolved")
	}
}
