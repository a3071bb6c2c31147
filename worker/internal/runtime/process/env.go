package process

import (
	"path/filepath"

	"fleetbox.dev/worker/internal/runtime"
)

// DefaultPath is the PATH of sandbox processes: the system directories only (never a pyenv or other
// per-user shim directory of the worker's own environment).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// sandboxEnv is the environment of every process of a sandbox: defaults, then the sandbox's variables.
func sandboxEnv(root, id string, vars map[string]string) []string {
	base := []string{
		"HOME=" + filepath.Join(root, runtime.SandboxHome),
		"TMPDIR=" + filepath.Join(root, "tmp"),
		"USER=user",
		"LOGNAME=user",
		"LANG=C.UTF-8",
		"PATH=" + DefaultPath,
	}
	return runtime.SandboxEnv(id, base, vars)
}
