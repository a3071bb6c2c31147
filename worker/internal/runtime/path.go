package runtime

import (
	"path"
	"strings"
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
