//go:build !linux

package runtimetest

import (
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// ProcessAlive reports whether pid runs: it exists (kill(pid, 0)) and ps does not show it as a zombie
// (a zombie is dead: it only waits to be reaped). On FreeBSD this sees jailed processes too, whose pids are
// the host's.
func ProcessAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	out, err := exec.Command("ps", "-o", "state=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		var ee *exec.ExitError
		// ps exits non-zero when the process is gone; a missing ps leaves kill's answer.
		return !errors.As(err, &ee)
	}
	state := strings.TrimSpace(string(out))
	return state != "" && state[0] != 'Z'
}

// GroupAlive reports whether process group pgid has any member (zombies included).
func GroupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
