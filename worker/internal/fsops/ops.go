package fsops

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"fleetbox.dev/schema"
)

// Stat describes the file at p (a final symlink is described, not followed; see Entry).
func (f *FS) Stat(p string) (schema.EntryInfo, error) {
	t, err := f.Lresolve(p)
	if err != nil {
		return schema.EntryInfo{}, err
	}
	return f.Entry(t)
}

// List describes what directory p holds down to depth levels (1: its entries; 2: also theirs, ...),
// in lexical order per directory, parents before children. Symlinks are listed, not descended into.
// Listing a file is a 400, a missing path a 404.
func (f *FS) List(p string, depth int) ([]schema.EntryInfo, error) {
	if depth < 0 {
		return nil, schema.Errorf(http.StatusBadRequest, "depth must be at least 1, not %d", depth)
	}
	depth = max(depth, 1)
	t, err := f.Resolve(p)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(t.Host)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, notFound(t.Path)
		}
		return nil, schema.Errorf(http.StatusInternalServerError, "stat '%s': %v", t.Path, unwrapPath(err))
	}
	if !fi.IsDir() {
		return nil, schema.Errorf(http.StatusBadRequest, "path '%s' is not a directory", t.Path)
	}
	entries := []schema.EntryInfo{}
	if err := f.walk(t, depth, &entries); err != nil {
		return nil, schema.Errorf(http.StatusInternalServerError, "list '%s': %v", t.Path, unwrapPath(err))
	}
	return entries, nil
}

func (f *FS) walk(dir Target, depth int, out *[]schema.EntryInfo) error {
	des, err := os.ReadDir(dir.Host)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && len(*out) > 0 {
			return nil // removed while we listed its parent
		}
		return err
	}
	for _, de := range des {
		child := Target{Path: path.Join(dir.Path, de.Name()), Host: filepath.Join(dir.Host, de.Name())}
		fi, err := de.Info()
		if err != nil {
			continue // gone since ReadDir
		}
		*out = append(*out, f.entry(child, fi))
		if depth > 1 && de.IsDir() {
			if err := f.walk(child, depth-1, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// MakeDir creates directory p and its missing parents with mode 0755. An existing directory is a 409,
// an existing file (at p or in the way above it) a 400.
func (f *FS) MakeDir(p string, owner *Owner) (schema.EntryInfo, error) {
	t, err := f.Resolve(p)
	if err != nil {
		return schema.EntryInfo{}, err
	}
	fi, err := os.Stat(t.Host)
	switch {
	case err == nil && fi.IsDir():
		return schema.EntryInfo{}, schema.Errorf(http.StatusConflict, "directory already exists: %s", t.Path)
	case err == nil:
		return schema.EntryInfo{}, schema.Errorf(http.StatusBadRequest, "path already exists but it is not a directory: %s", t.Path)
	}
	if err := MkdirAll(t.Host, owner); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
			return schema.EntryInfo{}, schema.Errorf(http.StatusBadRequest, "cannot create directory %s: a file is in the way", t.Path)
		}
		return schema.EntryInfo{}, ioError("create directory", t.Path, err)
	}
	return f.Entry(t)
}

// Move renames source to destination, replacing what is there, and creates the destination's missing
// parents. A missing source is a 404.
func (f *FS) Move(source, destination string) (schema.EntryInfo, error) {
	src, err := f.Lresolve(source)
	if err != nil {
		return schema.EntryInfo{}, err
	}
	dst, err := f.Lresolve(destination)
	if err != nil {
		return schema.EntryInfo{}, err
	}
	if src.Path == "/" || dst.Path == "/" {
		return schema.EntryInfo{}, schema.Errorf(http.StatusBadRequest, "cannot move the root directory")
	}
	if _, err := os.Lstat(src.Host); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return schema.EntryInfo{}, schema.Errorf(http.StatusNotFound, "source file not found: %s", src.Path)
		}
		return schema.EntryInfo{}, ioError("stat", src.Path, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst.Host), 0o755); err != nil {
		return schema.EntryInfo{}, ioError("create parent directories of", dst.Path, err)
	}
	if err := os.Rename(src.Host, dst.Host); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return schema.EntryInfo{}, schema.Errorf(http.StatusNotFound, "source file not found: %s", src.Path)
		}
		return schema.EntryInfo{}, ioError("rename "+src.Path+" to", dst.Path, err)
	}
	return f.Entry(dst)
}

// Remove removes p and everything below it. A missing path is not an error; a final symlink is
// removed, not what it points to.
func (f *FS) Remove(p string) error {
	t, err := f.Lresolve(p)
	if err != nil {
		return err
	}
	if t.Path == "/" {
		return schema.Errorf(http.StatusBadRequest, "cannot remove the root directory")
	}
	if err := os.RemoveAll(t.Host); err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return nil // a file where a parent should be: nothing to remove
		}
		return ioError("remove", t.Path, err)
	}
	return nil
}

// ioError turns a failed file operation into a *schema.Error without host paths: 507 when the disk
// is full, 500 otherwise.
func ioError(op, p string, err error) error {
	if IsNoSpace(err) {
		return schema.Errorf(http.StatusInsufficientStorage, "not enough disk space to %s %s", op, p)
	}
	return schema.Errorf(http.StatusInternalServerError, "%s %s: %v", op, p, unwrapPath(err))
}

// IsNoSpace reports whether err means the disk or the quota is full.
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// IsNotDir reports whether err means a file is where a directory should be.
func IsNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
