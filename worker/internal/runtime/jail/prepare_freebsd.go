//go:build freebsd

package jail

import "syscall"

// attach makes a process enter jail jid between fork and exec (jail_attach(2) in the child), so the
// worker itself never enters the jail.
func attach(a *syscall.SysProcAttr, jid int) error {
	a.Jail = jid
	a.Setpgid = true
	return nil
}
