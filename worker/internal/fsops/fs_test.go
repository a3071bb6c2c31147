package fsops

import (
	"errors"
	"net/http"
	"path/filepath"
	"testing"

	"fleetbox.dev/schema"
)

func TestClean(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		code     int
	}{
		{"/", "/", 0},
		{"/home/user/", "/home/user", 0},
		{"/home/user/../user/./a//b", "/home/user/a/b", 0},
		{"/home/user/../../etc/passwd", "/etc/passwd", 0},
		{"/home/user/../../../etc/passwd", "", http.StatusBadRequest},
		{"/..", "", http.StatusBadRequest},
		{"relative", "", http.StatusBadRequest},
	}
	for _, tt := range tests {
		got, err := Clean(tt.in)
		var se *schema.Error
		switch {
		case tt.code != 0 && (!errors.As(err, &se) || se.Code != tt.code):
			t.Errorf("Clean(%q) = %q, %v; want code %d", tt.in, got, err, tt.code)
		case tt.code == 0 && (err != nil || got != tt.want):
			t.Errorf("Clean(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSandboxPath(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	f, err := New(func(p string) (string, error) { return filepath.Join(root, p), nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		root:                                   "/",
		filepath.Join(root, "home/user/a.txt"): "/home/user/a.txt",
		root + "-other/x":                      "",
		"/etc/passwd":                          "",
	} {
		got, ok := f.SandboxPath(host)
		if got != want || ok != (want != "") {
			t.Errorf("SandboxPath(%q) = %q, %v; want %q", host, got, ok, want)
		}
	}
}
