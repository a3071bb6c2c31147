//go:build !linux

package system

import "syscall"

// sysProcAttr puts a server in its own process group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
