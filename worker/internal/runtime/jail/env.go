package jail

import "fleetbox.dev/worker/internal/runtime"

// DefaultPath is the PATH of processes in a jail (FreeBSD's, packages first).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// sandboxEnv is the environment of every process in a jail: paths are the jail's own.
func sandboxEnv(id string, vars map[string]string) []string {
	base := []string{
		"HOME=/home/user",
		"TMPDIR=/tmp",
		"USER=user",
		"LOGNAME=user",
		"LANG=C.UTF-8",
		"PATH=" + DefaultPath,
	}
	return runtime.SandboxEnv(id, base, vars)
}
