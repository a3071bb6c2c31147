//go:build !freebsd

package jail

import (
	"errors"
	"syscall"
)

// errNeedsFreeBSD is why processes cannot be started in a jail here.
var errNeedsFreeBSD = errors.New("jail runtime needs FreeBSD: cannot start a process inside a jail on this OS")

func attach(*syscall.SysProcAttr, int) error { return errNeedsFreeBSD }
