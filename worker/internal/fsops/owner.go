package fsops

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Owner is the host uid and gid that files made on a sandbox user's behalf are given to, where the
// sandbox's users are not the worker's (a jail). A nil *Owner leaves files to the worker's user.
type Owner struct{ UID, GID int }

// Chown gives host path p (not a symlink's target) to o; a nil o does nothing.
func (o *Owner) Chown(p string) error {
	if o == nil {
		return nil
	}
	return os.Lchown(p, o.UID, o.GID)
}

// MkdirAll is os.MkdirAll(dir, 0o755) that gives the directories it creates (not those that existed) to o.
func MkdirAll(dir string, o *Owner) error {
	if o == nil {
		return os.MkdirAll(dir, 0o755)
	}
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range missing {
		if err := o.Chown(d); err != nil {
			return err
		}
	}
	return nil
}
