package process

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// newGroupAttr makes a process the leader of a new process group (the holder).
func newGroupAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// joinGroup makes a process join group pgid when it starts.
func joinGroup(a *syscall.SysProcAttr, pgid int) {
	a.Setpgid = true
	a.Pgid = pgid
}

// killGroup sends SIGKILL to every process of group pgid.
func killGroup(pgid int) { _ = syscall.Kill(-pgid, syscall.SIGKILL) }

// processExists reports whether a process with this pid exists (zombies included).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// waitGroupDead kills group pgid until it has no live member (zombies do not count: they are dead and
// only wait for their parent), or fails after timeout or when ctx ends.
func waitGroupDead(ctx context.Context, pgid int, timeout time.Duration) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to kill process group %d", pgid)
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		if err := syscall.Kill(-pgid, syscall.SIGKILL); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if !groupLive(pgid) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process group %d still has live processes after %v", pgid, timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kill process group %d: %w", pgid, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}
