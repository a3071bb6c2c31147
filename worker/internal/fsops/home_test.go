package fsops

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
)

// A sandbox whose host reaches only its home (a VM sharing /home/user) is served below its home.
func TestHomeOnlySandbox(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	hostPath := func(p string) (string, error) {
		if p != runtime.SandboxHome && !strings.HasPrefix(p, runtime.SandboxHome+"/") {
			return "", fmt.Errorf("%q: %w", p, runtime.ErrPathEscape)
		}
		return filepath.Join(home, strings.TrimPrefix(p, runtime.SandboxHome)), nil
	}
	f, err := New(hostPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "a.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := f.Stat("/home/user/a.txt")
	if err != nil || e.Path != "/home/user/a.txt" {
		t.Fatalf("stat: %+v, %v", e, err)
	}
	if e, err := f.Stat("/home/user"); err != nil || e.Path != "/home/user" {
		t.Fatalf("stat of home: %+v, %v", e, err)
	}
	for _, p := range []string{"/", "/etc/passwd", "/home"} {
		_, err := f.Stat(p)
		var se *schema.Error
		if !errors.As(err, &se) || se.Code != 400 || !strings.Contains(se.Message, "leaves the sandbox") {
			t.Errorf("stat %s: %v, want a 400 leaving the sandbox", p, err)
		}
	}
	for host, want := range map[string]string{home: "/home/user", filepath.Join(home, "d", "x"): "/home/user/d/x"} {
		if got, ok := f.SandboxPath(host); !ok || got != want {
			t.Errorf("SandboxPath(%s) = %q, %v; want %q", host, got, ok, want)
		}
	}
	if _, ok := f.SandboxPath("/elsewhere"); ok {
		t.Error("a host path outside the home mapped")
	}
}
