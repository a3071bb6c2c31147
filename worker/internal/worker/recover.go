package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime"
)

// recoverLeftovers runs before the worker claims anything. Sandboxes an earlier run of this worker id
// left that are still running or paused by their records are adopted where the runtime can (their files,
// and a jail's processes, carry on; code contexts start fresh kernels); the runtime removes every other
// sandbox on the host (processes and files), and every other record this worker still owns that has not
// ended is marked killed. It retries while the bus fails, until ctx ends.
func (w *Worker) recoverLeftovers(ctx context.Context) error {
	bo := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second),
		backoff.WithMaxElapsedTime(0),
	), ctx)
	var recs []schema.Record
	err := backoff.RetryNotify(func() error {
		var err error
		recs, err = w.bus.ListRecords(ctx)
		return err
	}, bo, func(err error, d time.Duration) {
		w.log.Warn("list records of an earlier run; retrying", logkey.Error, err, "retry_in", d)
	})
	if err != nil {
		return fmt.Errorf("list records: %w", err)
	}
	adopted := w.adoptAll(ctx, recs)
	if err := w.rt.Cleanup(ctx, func(id string) bool { return adopted[id] }); err != nil {
		// Leftovers that could not be removed do not stop the worker; they are logged and retried next time.
		w.log.Error("clean up leftover sandboxes", logkey.Error, err)
	}
	bo.Reset()
	return backoff.RetryNotify(func() error { return w.endOwnRecords(ctx, recs, adopted) }, bo, func(err error, d time.Duration) {
		w.log.Warn("end records of an earlier run; retrying", logkey.Error, err, "retry_in", d)
	})
}

// adoptAll adopts the sandboxes of recs that this worker owns and that are running or paused, if the
// runtime can, and returns the ids it adopted.
func (w *Worker) adoptAll(ctx context.Context, recs []schema.Record) map[string]bool {
	adopted := map[string]bool{}
	a, ok := w.rt.(runtime.Adopter)
	if !ok {
		return adopted
	}
	for _, r := range recs {
		if r.Worker != w.id || (r.State != schema.StateRunning && r.State != schema.StatePaused) {
			continue
		}
		if err := w.adopt(ctx, a, r); err != nil {
			w.log.Warn("sandbox of an earlier run not adopted; it will be removed", logkey.SandboxID, r.ID, logkey.Error, err)
			continue
		}
		adopted[r.ID] = true
	}
	return adopted
}

// adopt takes over one sandbox of an earlier run: the runtime finds it, the worker serves it again and
// enforces its end.
func (w *Worker) adopt(ctx context.Context, a runtime.Adopter, rec schema.Record) error {
	if !w.slots.TryAcquire() {
		return errors.New("no free slot")
	}
	spec, err := w.specOf(rec)
	if err != nil {
		w.slots.Release()
		return err
	}
	rs, err := a.Adopt(ctx, spec)
	if err != nil {
		w.slots.Release()
		return err
	}
	sb, _, err := w.serve(ctx, rec, rs, KernelLazy)
	if err != nil {
		w.slots.Release()
		return err
	}
	// The record may have ended while the sandbox was being adopted (the reaper, a kill): it is not served
	// then. A kill ends the record if it has not ended, and gives the slot back.
	if cur, _, err := w.bus.GetRecord(ctx, rec.ID); err == nil && (cur.Worker != w.id || !cur.State.Live()) {
		if kerr := w.kill(ctx, rec.ID, schema.ReasonWorkerRestarted); kerr != nil {
			sb.log.Warn("remove a sandbox whose record ended during adoption", logkey.Error, kerr)
		}
		return fmt.Errorf("record is %s (worker %q) after adoption", cur.State, cur.Worker)
	}
	w.armTimer(sb, rec.EndAt)
	sb.log.Info("adopted sandbox of an earlier run", "state", rec.State, "end_at", rec.EndAt)
	return nil
}

// endOwnRecords marks killed every record of recs this worker owns that has not ended and was not adopted.
func (w *Worker) endOwnRecords(ctx context.Context, recs []schema.Record, adopted map[string]bool) error {
	var errs []error
	for _, r := range recs {
		if r.Worker != w.id || r.State.Terminal() || adopted[r.ID] {
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
