package jail

import (
	"fmt"

	"fleetbox.dev/worker/internal/runtime"
)

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
	host, err := runtime.ResolveRooted(s.root, "/", parts)
	if err != nil {
		return "", fmt.Errorf("%q: %w", sandboxPath, err)
	}
	return host, nil
}
