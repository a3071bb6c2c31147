package fsops

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestMkdirAllOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := &Owner{UID: 1234, GID: 2345}
	if err := MkdirAll(filepath.Join(root, "old", "a", "b"), o); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string][2]uint32{
		"old":     {0, 0}, // existed: left alone
		"old/a":   {1234, 2345},
		"old/a/b": {1234, 2345},
	} {
		fi, err := os.Stat(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := [2]uint32{st.Uid, st.Gid}; got != want {
			t.Errorf("%s owned by %v, want %v", dir, got, want)
		}
	}
	if err := MkdirAll(filepath.Join(root, "old", "a", "b"), o); err != nil {
		t.Fatalf("existing directory: %v", err)
	}
	var none *Owner
	if err := none.Chown(filepath.Join(root, "old")); err != nil {
		t.Fatalf("nil owner: %v", err)
	}
}
