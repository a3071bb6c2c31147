package bhyve

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

// homeParts is runtime.SandboxHome as path components: the guest's mount point of the shared home.
var homeParts = strings.Split(strings.TrimPrefix(runtime.SandboxHome, "/"), "/")

// errOutsideHome is why a VM's path outside its home has no host path.
var errOutsideHome = fmt.Errorf("%w: only %s is reachable from the host in a VM", runtime.ErrPathEscape, runtime.SandboxHome)

// HostPath maps a guest path to the host path of the VM's shared home: /home/user and what is below it
// are the 9p share on the host, everything else is on the VM's disk, which the host does not reach, and
// is refused with an error matching runtime.ErrPathEscape. Symlinks in the share are followed as the
// guest follows them: an absolute target is a guest path (so /home/user/x is the share again, /etc is
// not), ".." never climbs above "/", and a resolution that leaves /home/user on the way to a file is
// refused. The path need not exist (its existing prefix is resolved).
func (vm *VM) HostPath(sandboxPath string) (string, error) {
	parts, err := runtime.PathComponents(sandboxPath)
	if err != nil {
		return "", fmt.Errorf("%q: %w", sandboxPath, err)
	}
	host, err := resolveHome(vm.home, parts)
	if err != nil {
		return "", fmt.Errorf("%q: %w", sandboxPath, err)
	}
	return host, nil
}

// resolveHome walks the guest path parts from "/" with the share at /home/user and returns the host
// path under home.
func resolveHome(home string, parts []string) (string, error) {
	var cur []string // resolved guest components from "/"
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
		next := append(slices.Clone(cur), part)
		if !hasPrefix(next, homeParts) {
			if hasPrefix(homeParts, next) { // "/home" on the way to the share
				cur = next
				continue
			}
			return "", errOutsideHome
		}
		host := filepath.Join(append([]string{home}, next[len(homeParts):]...)...)
		fi, err := os.Lstat(host)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			// Nothing below a missing component exists; ".." through it would fail in the guest too.
			if slices.Contains(parts, "..") {
				return "", fs.ErrNotExist
			}
			for _, p := range parts {
				if p != "" && p != "." {
					next = append(next, p)
				}
			}
			cur, parts = next, nil
			break
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", errors.New("too many levels of symbolic links")
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = nil
		}
		parts = append(strings.Split(target, "/"), parts...)
	}
	if !hasPrefix(cur, homeParts) {
		return "", errOutsideHome
	}
	return filepath.Join(append([]string{home}, cur[len(homeParts):]...)...), nil
}

// hasPrefix reports whether p starts with the components of prefix.
func hasPrefix(p, prefix []string) bool {
	return len(p) >= len(prefix) && slices.Equal(p[:len(prefix)], prefix)
}
