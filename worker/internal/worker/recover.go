package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
)

// recoverLeftovers runs before the worker claims anything: the runtime removes every sandbox left on
// the host by an earlier run (processes and files), and every record this worker id still owns and that
// has not ended is marked killed. A later version may adopt them instead. It retries while the bus
// fails, until ctx ends.
func (w *Worker) recoverLeftovers(ctx context.Context) error {
	if err := w.rt.Cleanup(ctx, func(string) bool { return false }); err != nil {
		// Leftovers that could not be removed do not stop the worker; they are logged and retried next time.
		w.log.Error("clean up leftover sandboxes", logkey.Error, err)
	}
	bo := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second),
		backoff.WithMaxElapsedTime(0),
	), ctx)
	return backoff.RetryNotify(func() error { return w.endOwnRecords(ctx) }, bo, func(err error, d time.Duration) {
		w.log.Warn("end records of an earlier run; retrying", logkey.Error, err, "retry_in", d)
	})
}

// endOwnRecords marks killed every record this worker owns that has not ended.
func (w *Worker) endOwnRecords(ctx context.Context) error {
	recs, err := w.bus.ListRecords(ctx)
	if err != nil {
		return fmt.Errorf("list records: %w", err)
	}
	var errs []error
	for _, r := range recs {
		if r.Worker != w.id || r.State.Terminal() {
			continue
		}
		if err := w.markEnded(ctx, r.ID, schema.StateKilled, schema.ReasonWorkerRestarted); err != nil {
			errs = append(errs, err)
			continue
		}
		w.log.Info("ended sandbox of an earlier run", logkey.SandboxID, r.ID, "state", r.State)
	}
	return errors.Join(errs...)
}
