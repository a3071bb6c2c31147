package process

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"fleetbox.dev/worker/internal/runtime"
)

// HostPath maps a sandbox path to a host path under the sandbox's root. The existing part of the path is
// resolved component by component, following symlinks the way the sandbox's processes would (an absolute
// target is a host path, since there is no chroot), so a link that points out of the root is refused
// rather than followed by a worker-side open. A component that does not exist ends the resolution; the
// rest is appended as is.
//
// Resolution and use are not atomic: a sandbox process can swap a directory for a link in between. That
// is acceptable for this runtime, which isolates nothing (see the package comment).
func (s *Sandbox) HostPath(sandboxPath string) (string, error) {
	parts, err := runtime.PathComponents(sandboxPath)
	if err != nil {
		return "", fmt.Errorf("%q: %w", sandboxPath, err)
	}
	host, err := resolve(s.root, parts)
	if err != nil {
		return "", fmt.Errorf("%q: %w", sandboxPath, err)
	}
	return host, nil
}

// resolve walks parts from root, following symlinks, and returns the host path if it stays within root.
func resolve(root string, parts []string) (string, error) {
	cur := root
	links := 0
	for len(parts) > 0 {
		part := parts[0]
		parts = parts[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			// Nothing below a missing component exists; ".." through it would fail in the kernel too.
			for _, rest := range parts {
				if rest == ".." {
					return "", fs.ErrNotExist
				}
			}
			cur = filepath.Join(append([]string{next}, parts...)...)
			break
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > runtime.MaxLinks {
			return "", errors.New("too many levels of symbolic links")
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		parts = append(strings.Split(filepath.ToSlash(target), "/"), parts...)
	}
	if cur != root && !strings.HasPrefix(cur, root+string(filepath.Separator)) {
		return "", runtime.ErrPathEscape
	}
	return cur, nil
}
