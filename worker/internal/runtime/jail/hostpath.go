package jail

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"fleetbox.dev/worker/internal/runtime"
)

// maxLinks bounds symlink resolution, as the kernel's ELOOP does.
const maxLinks = 40

// HostPath maps a sandbox path to a host path under the jail's root. The existing part of the path is
// resolved component by component, following symlinks as the jail's processes see them: an absolute
// target is relative to the jail's root, and ".." never climbs above it. The result is always inside the
// root; a resolution that would leave it (it cannot, given the above, unless the root itself changes
// under us) is refused with runtime.ErrPathEscape, as is ".." above "/" in the path as given.
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

// resolve walks parts from root with chroot semantics and returns the host path.
func resolve(root string, parts []string) (string, error) {
	var cur []string // resolved components below root
	links := 0
	for len(parts) > 0 {
		part := parts[0]
		parts = parts[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			continue
		}
		next := filepath.Join(root, filepath.Join(append(slices.Clone(cur), part)...))
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			if slices.Contains(parts, "..") {
				return "", fs.ErrNotExist
			}
			cur = append(append(cur, part), parts...)
			parts = nil
			break
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = append(cur, part)
			continue
		}
		if links++; links > maxLinks {
			return "", errors.New("too many levels of symbolic links")
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = nil
		}
		parts = append(strings.Split(target, "/"), parts...)
	}
	host := filepath.Join(append([]string{root}, cur...)...)
	if host != root && !strings.HasPrefix(host, root+string(filepath.Separator)) {
		return "", runtime.ErrPathEscape
	}
	return host, nil
}
