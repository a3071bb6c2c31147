package bhyve

import "fleetbox.dev/worker/internal/runtime"

// GuestPath is the PATH of processes in a FreeBSD guest (packages first).
const GuestPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// guestEnv is the environment of every process in a VM, as the guest sees it.
func guestEnv(id string, vars map[string]string) []string {
	base := []string{
		"HOME=" + runtime.SandboxHome,
		"TMPDIR=/tmp",
		"USER=" + runtime.DefaultUser,
		"LOGNAME=" + runtime.DefaultUser,
		"LANG=C.UTF-8",
		"PATH=" + GuestPath,
	}
	return runtime.SandboxEnv(id, base, vars)
}

// Env returns a copy of the guest environment of the VM's processes (Spec.EnvVars on top of the
// defaults, then E2B_SANDBOX and E2B_SANDBOX_ID).
func (vm *VM) Env() []string { return append([]string(nil), vm.env...) }

// FileOwner returns the owner of files the worker writes for user in the shared home: the sandbox user
// ("" or "user") is Config.UID:GID, "root" is 0:0. Other users are unknown: the guest's user database is
// on its disk, which the host does not read.
func (vm *VM) FileOwner(user string) (uid, gid int, ok bool) {
	switch user {
	case "", runtime.DefaultUser:
		uid, gid = vm.rt.user()
		return uid, gid, true
	case "root":
		return 0, 0, true
	}
	return 0, 0, false
}

// OwnerNames names the owners of the home's files as the guest does for the ids it is known to have
// (root and the sandbox user); others are "" (the host's names of those ids mean nothing in the guest).
func (vm *VM) OwnerNames(uid, gid uint32) (owner, group string) {
	u, g := vm.rt.user()
	switch uid {
	case 0:
		owner = "root"
	case uint32(u):
		owner = runtime.DefaultUser
	}
	switch gid {
	case 0:
		group = "wheel"
	case uint32(g):
		group = runtime.DefaultUser
	}
	return owner, group
}
