package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// errChanged: a file was replaced by another kind of file between its listing and its copy.
var errChanged = errors.New("changed while copied")

// copyTree copies the contents of directory src into the existing directory dst, then gives dst src's
// mode: directories, regular files and symlinks (as links, their targets unchanged and never followed)
// keep their permission bits (setuid, setgid and sticky included) and modification times; sockets, fifos
// and devices are skipped, as are the top-level names in skipTop. Ownership is not kept (the process
// runtime's files are all the worker's), nor are hard links (each name gets its own copy).
//
// Entries that disappear while it runs are skipped (sandbox processes may be running); everything else
// that fails fails the copy. Directories are made writable until their contents are in, so read-only
// directories copy too.
func copyTree(ctx context.Context, src, dst string, skipTop ...string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("copy %s: not a directory", src)
	}
	skip := map[string]bool{}
	for _, n := range skipTop {
		skip[n] = true
	}
	if err := copyContents(ctx, src, dst, skip); err != nil {
		return err
	}
	return finishDir(dst, fi)
}

// copyContents copies the entries of src into dst (which exists), except the names in skip.
func copyContents(ctx context.Context, src, dst string, skip map[string]bool) error {
	// O_NOFOLLOW: a directory swapped for a symlink after it was listed is not followed out of the tree.
	d, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if skip[e.Name()] {
			continue
		}
		s, t := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		fi, err := os.Lstat(s)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		switch m := fi.Mode(); {
		case m.IsDir():
			err = copyDir(ctx, s, t, fi)
		case m.IsRegular():
			err = copyFile(s, t, fi)
		case m&fs.ModeSymlink != 0:
			err = copyLink(s, t)
		default: // sockets, fifos, devices: not file system content
			continue
		}
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, errChanged) {
			continue // removed, or replaced by another kind of file, while we copied
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func copyDir(ctx context.Context, src, dst string, fi fs.FileInfo) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	if err := copyContents(ctx, src, dst, nil); err != nil {
		return err
	}
	return finishDir(dst, fi)
}

// finishDir gives a copied directory its source's mode and modification time, once its contents are in.
func finishDir(dst string, fi fs.FileInfo) error {
	if err := os.Chmod(dst, perm(fi.Mode())); err != nil {
		return err
	}
	return os.Chtimes(dst, time.Time{}, fi.ModTime())
}

func copyFile(src, dst string, fi fs.FileInfo) error {
	// O_NONBLOCK: a file swapped for a fifo after it was listed does not block the open.
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	if st, err := in.Stat(); err != nil {
		return err
	} else if !st.Mode().IsRegular() {
		return errChanged
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Chmod(dst, perm(fi.Mode())); err != nil {
		return err
	}
	return os.Chtimes(dst, time.Time{}, fi.ModTime())
}

func copyLink(src, dst string) error {
	target, err := os.Readlink(src)
	if err != nil {
		return err
	}
	return os.Symlink(target, dst)
}

// perm is the part of a mode that copies keep: permission bits plus setuid, setgid and sticky.
func perm(m fs.FileMode) fs.FileMode {
	return m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}
