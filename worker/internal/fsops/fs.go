// Package fsops is envd's filesystem service over a sandbox's host directory: it maps sandbox paths to
// host paths through the runtime (never leaving the sandbox's root), describes files as envd's
// EntryInfo (with sandbox paths), and implements stat, list, mkdir, move and remove with envd's
// semantics and error codes. Errors it returns are *schema.Error values ready for the bus.
package fsops

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
)

// HostPathFunc maps a sandbox path to a host path, following symlinks and refusing paths that leave
// the sandbox (runtime.Sandbox.HostPath).
type HostPathFunc func(sandboxPath string) (string, error)

// NamesFunc names the owner and group of a file from its numeric ids.
type NamesFunc func(uid, gid uint32) (owner, group string)

// FS is the file system of one sandbox.
type FS struct {
	hostPath HostPathFunc
	root     string // host path of the sandbox path base: "/", or the home of a VM whose host reaches only it
	base     string // the sandbox path that root is
	names    NamesFunc
}

// New returns the FS of the sandbox whose paths hostPath maps; names defaults to HostNames. A sandbox
// whose host reaches only its home (a VM sharing /home/user) serves the paths below its home.
func New(hostPath HostPathFunc, names NamesFunc) (*FS, error) {
	base := "/"
	root, err := hostPath(base)
	if errors.Is(err, runtime.ErrPathEscape) {
		base = runtime.SandboxHome
		root, err = hostPath(base)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox root: %w", err)
	}
	if names == nil {
		names = HostNames
	}
	return &FS{hostPath: hostPath, root: filepath.Clean(root), base: base, names: names}, nil
}

// Target is one file named both ways.
type Target struct {
	// Path is the sandbox path as asked for, made absolute and clean (symlinks not resolved).
	Path string
	// Host is where the file is on the host.
	Host string
}

// Clean makes an absolute sandbox path clean, refusing ".." above the root (as the runtime does).
func Clean(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", schema.Errorf(http.StatusBadRequest, "path '%s' is not absolute", p)
	}
	var parts []string
	for part := range strings.SplitSeq(p, "/") {
		switch part {
		case "", ".":
		case "..":
			if len(parts) == 0 {
				return "", escapeError(p)
			}
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, part)
		}
	}
	return "/" + strings.Join(parts, "/"), nil
}

// Resolve maps an absolute sandbox path to its host path, following every symlink.
func (f *FS) Resolve(p string) (Target, error) {
	clean, err := Clean(p)
	if err != nil {
		return Target{}, err
	}
	host, err := f.hostPath(clean)
	if err != nil {
		return Target{}, pathError(clean, err)
	}
	return Target{Path: clean, Host: host}, nil
}

// Lresolve maps an absolute sandbox path to its host path, following symlinks in its parent but not
// the last component: the target of an operation on the link itself (stat, remove, move).
func (f *FS) Lresolve(p string) (Target, error) {
	clean, err := Clean(p)
	if err != nil {
		return Target{}, err
	}
	if clean == f.base {
		return Target{Path: clean, Host: f.root}, nil
	}
	if clean == "/" {
		return Target{}, pathError(clean, runtime.ErrPathEscape)
	}
	dir, err := f.hostPath(path.Dir(clean))
	if err != nil {
		return Target{}, pathError(clean, err)
	}
	return Target{Path: clean, Host: filepath.Join(dir, path.Base(clean))}, nil
}

// SandboxPath turns a host path inside the sandbox's root (or shared home) back into a sandbox path.
func (f *FS) SandboxPath(host string) (string, bool) {
	host = filepath.Clean(host)
	if host == f.root {
		return f.base, true
	}
	rest, ok := strings.CutPrefix(host, f.root+string(filepath.Separator))
	if !ok {
		return "", false
	}
	return path.Join(f.base, filepath.ToSlash(rest)), true
}

// escapeError refuses a path that leaves the sandbox.
func escapeError(p string) error {
	return schema.Errorf(http.StatusBadRequest, "path '%s' leaves the sandbox", p)
}

// pathError turns an error of mapping or using path p into a *schema.Error.
func pathError(p string, err error) error {
	var se *schema.Error
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, runtime.ErrPathEscape):
		return escapeError(p)
	case errors.Is(err, fs.ErrNotExist):
		return notFound(p)
	case errors.Is(err, fs.ErrPermission):
		return schema.Errorf(http.StatusForbidden, "path '%s': permission denied", p)
	}
	return schema.Errorf(http.StatusBadRequest, "path '%s': %v", p, unwrapPath(err))
}

func notFound(p string) error {
	return schema.Errorf(http.StatusNotFound, "path '%s' does not exist", p)
}

// unwrapPath drops the wrappers that name host paths, which must not reach clients.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	if inner := errors.Unwrap(err); inner != nil {
		return inner
	}
	return err
}
