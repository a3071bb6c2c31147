package process

import (
	"context"
	"fmt"
	"time"

	"fleetbox.dev/worker/internal/runtime"
)

// pauseTimeout bounds how long Pause keeps signalling the sandbox before it gives up on a process that
// does not stop (one in an uninterruptible sleep, or one that keeps forking). Signalled processes stop
// when the scheduler next runs them, which on a loaded host can take a while.
const pauseTimeout = 2 * time.Second

var _ runtime.Pauser = (*Sandbox)(nil)

// Pause stops every process of the sandbox with SIGSTOP: its process group (holder included) and, on
// Linux, the processes outside it that carry the sandbox's id. It repeats, with short waits, until /proc
// shows all of them stopped or dead (a process can fork between the signal and the check), for up to
// pauseTimeout; elsewhere one signal to the group is all it does. A sandbox that never ran a process has
// nothing to stop. s.mu is held throughout, so no process starts in the sandbox meanwhile. If Pause fails,
// some processes may be stopped: Resume continues them. Destroy kills paused processes as it kills
// running ones.
func (s *Sandbox) Pause(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return fmt.Errorf("pause %s: %w", s.id, runtime.ErrDestroyed)
	}
	if s.pgid == 0 {
		return nil
	}
	deadline := time.Now().Add(pauseTimeout)
	wait := time.Millisecond
	for round := 1; ; round++ {
		running := stopRound(s.pgid, s.id)
		if running == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pause %s: %d processes still running after %d rounds of SIGSTOP in %v", s.id, running, round, pauseTimeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pause %s: %w", s.id, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// Resume sends SIGCONT to every process Pause stops. Resuming a running sandbox changes nothing.
func (s *Sandbox) Resume(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return fmt.Errorf("resume %s: %w", s.id, runtime.ErrDestroyed)
	}
	if s.pgid != 0 {
		continueAll(s.pgid, s.id)
	}
	return nil
}
