package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
)

// killTimeout bounds one kill when its caller has no deadline of its own.
const killTimeout = 30 * time.Second

// opKill ends a sandbox for a client.
func (w *Worker) opKill(ctx context.Context, id string, req schema.KillRequest) (schema.Empty, error) {
	reason := req.Reason
	if reason == "" {
		reason = schema.ReasonKilled
	}
	// The kill completes even if the requester stops waiting.
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
	defer cancel()
	return schema.Empty{}, w.kill(kctx, id, reason)
}

// kill ends sandbox id: it stops serving its operations, interrupts its executions, ends its envd
// processes, watches and uploads, kills its kernels and every other process, removes its files,
// records it killed with reason and gives its slot back. A second kill of the same sandbox waits for
// the first.
func (w *Worker) kill(ctx context.Context, id, reason string) error {
	w.mu.Lock()
	sb := w.sandboxes[id]
	w.mu.Unlock()
	if sb == nil {
		return sandboxNotFound(id)
	}
	sb.mu.Lock()
	if sb.killing {
		sb.mu.Unlock()
		select {
		case <-sb.killed:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("kill %s: %w", id, ctx.Err())
		}
	}
	sb.killing = true
	sub := sb.sub
	if sb.timer != nil {
		sb.timer.Stop()
	}
	sb.mu.Unlock()
	defer close(sb.killed)

	// New requests now find no responder: the sandbox is gone for the fleet.
	if sub != nil {
		_ = sub.Unsubscribe()
	}
	// Destroy before closing the kernels: it kills their children too, which may hold a kernel's output
	// pipe open and would make the kernel's Close wait.
	sb.cancel()
	var errs []error
	// envd's processes lead groups of their own, which Destroy's group kill does not reach.
	if err := sb.envd.close(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := sb.rt.Destroy(ctx); err != nil {
		errs = append(errs, err)
	}
	sb.closeContexts()
	if err := w.markEnded(ctx, id, schema.StateKilled, reason); err != nil {
		errs = append(errs, err)
	}
	w.unregister(id)
	w.slots.Release()
	if err := errors.Join(errs...); err != nil {
		sb.log.Error("kill sandbox", "reason", reason, logkey.Error, err)
		return fmt.Errorf("kill %s: %w", id, err)
	}
	sb.log.Info("sandbox killed", "reason", reason)
	return nil
}

// errSkip aborts a record update that has nothing to do.
var errSkip = errors.New("nothing to update")

// markEnded moves a record this worker owns to a terminal state, unless it already ended.
func (w *Worker) markEnded(ctx context.Context, id string, to schema.State, reason string) error {
	_, _, err := w.bus.UpdateRecord(ctx, id, func(cur schema.Record) (schema.Record, error) {
		if cur.Worker != w.id || cur.State.Terminal() {
			return cur, errSkip
		}
		next, err := cur.Transition(to, reason)
		if err != nil {
			return cur, err
		}
		next.EndedAt = time.Now().UTC()
		return next, nil
	})
	if err != nil && !errors.Is(err, errSkip) && !errors.Is(err, schema.ErrNotFound) {
		return fmt.Errorf("mark %s %s: %w", id, to, err)
	}
	return nil
}
