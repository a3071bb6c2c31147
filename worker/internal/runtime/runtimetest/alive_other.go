//go:build !linux

package runtimetest

import (
	"errors"
	"syscall"
)

// ProcessAlive reports whether pid exists; without /proc a zombie counts as alive.
func ProcessAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// GroupAlive reports whether process group pgid has any member (zombies included).
func GroupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
