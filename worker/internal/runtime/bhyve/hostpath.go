package bhyve

import (
	"errors"
	"fmt"

	"fleetbox.dev/worker/internal/runtime"
)

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
	host, err := runtime.ResolveRooted(vm.home, runtime.SandboxHome, parts)
	if errors.Is(err, runtime.ErrPathEscape) {
		err = errOutsideHome
	}
	if err != nil {
		return "", fmt.Errorf("%q: %w", sandboxPath, err)
	}
	return host, nil
}
