package system

import "syscall"

// sysProcAttr puts a server in its own process group and has the kernel SIGTERM it if we die first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
