package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"fleetbox.dev/schema"
)

// opTimeout moves the sandbox's end (only later, with ExtendOnly) and re-arms its timer.
func (w *Worker) opTimeout(ctx context.Context, id string, req schema.TimeoutRequest) (schema.TimeoutReply, error) {
	sb, err := w.lookupAny(id)
	if err != nil {
		return schema.TimeoutReply{}, err
	}
	if req.EndAt.IsZero() {
		return schema.TimeoutReply{}, schema.Errorf(http.StatusBadRequest, "timeout: no end time")
	}
	rec, _, err := w.bus.UpdateRecord(ctx, id, func(cur schema.Record) (schema.Record, error) {
		if cur.Worker != w.id || !cur.State.Live() {
			return cur, schema.Errorf(http.StatusConflict, "sandbox %s is %s", id, cur.State)
		}
		if req.ExtendOnly && !req.EndAt.After(cur.EndAt) {
			return cur, errSkip
		}
		cur.EndAt = req.EndAt.UTC()
		return cur, nil
	})
	if err != nil && !errors.Is(err, errSkip) {
		return schema.TimeoutReply{}, fmt.Errorf("timeout %s: %w", id, err)
	}
	w.armTimer(sb, rec.EndAt)
	return schema.TimeoutReply{Record: rec}, nil
}
