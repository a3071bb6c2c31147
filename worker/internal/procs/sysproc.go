package procs

import "syscall"

// The process attributes below exist on every unix the worker runs on (Linux, FreeBSD); they are
// applied after the runtime's Prepare, keeping what it set (credentials, jail) and replacing only the
// process group.

// ownGroup makes the process the leader of a new process group.
func ownGroup(a *syscall.SysProcAttr) {
	a.Setsid, a.Setctty = false, false
	a.Setpgid, a.Pgid = true, 0
}

// ownSession makes the process a session leader whose controlling terminal is its stdin (a pty).
func ownSession(a *syscall.SysProcAttr) {
	a.Setpgid, a.Pgid = false, 0
	a.Setsid, a.Setctty, a.Ctty = true, true, 0
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
