package worker

import (
	"context"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
)

// armTimer makes the sandbox end at endAt (a zero time means never). Each sandbox has its own timer.
func (w *Worker) armTimer(sb *sandbox, endAt time.Time) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.killing {
		return
	}
	sb.endAt = endAt
	if sb.timer != nil {
		sb.timer.Stop()
		sb.timer = nil
	}
	if endAt.IsZero() {
		return
	}
	sb.timer = time.AfterFunc(time.Until(endAt), func() { w.expire(sb) })
}

// expire kills a sandbox whose end has come. A timer that fires just as the end moved later (opTimeout
// re-arms under the same lock, but a fired timer cannot be stopped) checks the end again.
func (w *Worker) expire(sb *sandbox) {
	sb.mu.Lock()
	endAt := sb.endAt
	sb.mu.Unlock()
	if endAt.IsZero() {
		return
	}
	if d := time.Until(endAt); d > 0 {
		w.armTimer(sb, endAt)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	if sb.onTimeout == "pause" && !sb.isPaused() {
		err := w.pauseAtEnd(ctx, sb)
		if err == nil {
			sb.log.Info("sandbox timed out; paused (auto-pause)", "end_at", endAt)
			return
		}
		sb.log.Warn("auto-pause failed; killing the sandbox", logkey.Error, err)
	}
	sb.log.Info("sandbox timed out", "end_at", endAt)
	if err := w.kill(ctx, sb.id, schema.ReasonTimeout); err != nil {
		sb.log.Error("kill timed-out sandbox", logkey.Error, err)
	}
}
