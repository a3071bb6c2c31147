package runtime

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// PathComponents splits a sandbox path into its components from the sandbox's "/": a relative path
// starts at SandboxHome, "." and ".." are applied, and ".." above "/" is ErrPathEscape. Symlinks are the
// runtime's to resolve (each runtime knows what an absolute link target means in its sandboxes).
func PathComponents(sandboxPath string) ([]string, error) {
	p := sandboxPath
	if !path.IsAbs(p) {
		p = SandboxHome + "/" + p
	}
	var out []string
	for _, part := range strings.Split(p, "/") {
		switch part {
		case "", ".":
		case "..":
			if len(out) == 0 {
				return nil, ErrPathEscape
			}
			out = out[:len(out)-1]
		default:
			out = append(out, part)
		}
	}
	return out, nil
}

// MaxLinks bounds symlink resolution, as the kernel's ELOOP does.
const MaxLinks = 40

// ResolveRooted maps the components of a sandbox path (PathComponents) to a host path for a sandbox with a
// root of its own (a jail, a VM), whose host directory root holds the sandbox path base ("/" for a jail's
// root, "/home/user" for a VM's shared home). Symlinks are followed as the sandbox's processes follow them:
// an absolute target is a sandbox path, ".." never climbs above "/". Paths that are not below base (after
// resolution) have no host path: ErrPathEscape. A component that does not exist ends the resolution (the
// rest is appended as is), unless ".." follows it, which is fs.ErrNotExist as in the sandbox.
func ResolveRooted(root, base string, parts []string) (string, error) {
	baseParts, err := PathComponents(base)
	if err != nil {
		return "", err
	}
	under := func(p []string) bool { return len(p) >= len(baseParts) && slices.Equal(p[:len(baseParts)], baseParts) }
	var cur []string // resolved sandbox components from "/"
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
		if !under(next) {
			if len(next) < len(baseParts) && slices.Equal(baseParts[:len(next)], next) {
				cur = next // a directory on the way to base, which the host does not hold
				continue
			}
			return "", ErrPathEscape
		}
		host := filepath.Join(append([]string{root}, next[len(baseParts):]...)...)
		fi, err := os.Lstat(host)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
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
		if links++; links > MaxLinks {
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
	if !under(cur) {
		return "", ErrPathEscape
	}
	return filepath.Join(append([]string{root}, cur[len(baseParts):]...)...), nil
}
