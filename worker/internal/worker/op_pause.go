package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime"
)

// opPause stops every process of a running sandbox in place: they keep their memory, so code contexts
// keep their variables. The sandbox then ends at req.EndAt, or after the paused retention.
func (w *Worker) opPause(ctx context.Context, id string, req schema.PauseRequest) (schema.Record, error) {
	sb, err := w.lookupAny(id)
	if err != nil {
		return schema.Record{}, err
	}
	endAt := req.EndAt
	if endAt.IsZero() {
		endAt = time.Now().Add(w.cfg.PausedRetention)
	}
	return w.pause(ctx, sb, endAt.UTC())
}

// pause pauses sb and records it paused until endAt.
func (w *Worker) pause(ctx context.Context, sb *sandbox, endAt time.Time) (schema.Record, error) {
	p, ok := sb.rt.(runtime.Pauser)
	if !ok {
		return schema.Record{}, schema.Errorf(http.StatusNotImplemented, "the %s runtime cannot pause sandboxes", w.rt.Name())
	}
	sb.lifeMu.Lock()
	defer sb.lifeMu.Unlock()
	// Process starts under way finish first; later ones see paused and are refused.
	sb.startMu.Lock()
	sb.mu.Lock()
	if sb.paused {
		sb.mu.Unlock()
		sb.startMu.Unlock()
		return schema.Record{}, schema.Errorf(http.StatusConflict, "sandbox %s is already paused", sb.id)
	}
	// New data-plane operations are refused from now on; the ones in flight stall with the processes.
	sb.paused = true
	sb.mu.Unlock()
	sb.startMu.Unlock()
	undo := func(cause error) error {
		if rerr := p.Resume(context.WithoutCancel(ctx)); rerr != nil {
			sb.log.Error("resume after failed pause", logkey.Error, rerr)
		}
		sb.mu.Lock()
		sb.paused = false
		sb.mu.Unlock()
		return fmt.Errorf("pause %s: %w", sb.id, cause)
	}
	if err := p.Pause(ctx); err != nil {
		return schema.Record{}, undo(err)
	}
	now := time.Now().UTC()
	rec, _, err := w.bus.UpdateRecord(ctx, sb.id, func(cur schema.Record) (schema.Record, error) {
		if cur.Worker != w.id || cur.State != schema.StateRunning {
			return cur, schema.Errorf(http.StatusConflict, "sandbox %s is %s", sb.id, cur.State)
		}
		next, err := cur.Transition(schema.StatePaused, "")
		next.PausedAt, next.EndAt = now, endAt
		return next, err
	})
	if err != nil {
		return schema.Record{}, undo(err)
	}
	w.armTimer(sb, endAt)
	sb.log.Info("sandbox paused", "end_at", endAt)
	return rec, nil
}

// opResume continues a paused sandbox, which then ends at req.EndAt.
func (w *Worker) opResume(ctx context.Context, id string, req schema.ResumeRequest) (schema.Record, error) {
	sb, err := w.lookupAny(id)
	if err != nil {
		return schema.Record{}, err
	}
	if req.EndAt.IsZero() {
		return schema.Record{}, schema.Errorf(http.StatusBadRequest, "resume: no end time")
	}
	p, ok := sb.rt.(runtime.Pauser)
	if !ok {
		return schema.Record{}, schema.Errorf(http.StatusNotImplemented, "the %s runtime cannot pause sandboxes", w.rt.Name())
	}
	sb.lifeMu.Lock()
	defer sb.lifeMu.Unlock()
	if !sb.isPaused() {
		return schema.Record{}, schema.Errorf(http.StatusConflict, "sandbox %s is not paused", id)
	}
	if err := p.Resume(ctx); err != nil {
		return schema.Record{}, fmt.Errorf("resume %s: %w", id, err)
	}
	rec, _, err := w.bus.UpdateRecord(ctx, id, func(cur schema.Record) (schema.Record, error) {
		if cur.Worker != w.id || cur.State != schema.StatePaused {
			return cur, schema.Errorf(http.StatusConflict, "sandbox %s is %s", id, cur.State)
		}
		next, err := cur.Transition(schema.StateRunning, "")
		next.PausedAt, next.EndAt = time.Time{}, req.EndAt.UTC()
		return next, err
	})
	if err != nil {
		// The record still says paused: so must the processes.
		if perr := p.Pause(context.WithoutCancel(ctx)); perr != nil {
			sb.log.Error("pause again after failed resume", logkey.Error, perr)
		}
		return schema.Record{}, fmt.Errorf("resume %s: %w", id, err)
	}
	sb.mu.Lock()
	sb.paused = false
	sb.mu.Unlock()
	w.armTimer(sb, rec.EndAt)
	sb.log.Info("sandbox resumed", "end_at", rec.EndAt)
	return rec, nil
}

// errNotPausable means a sandbox asked to pause at its end cannot (its runtime has no pause): it is killed.
var errNotPausable = errors.New("runtime cannot pause")

// pauseAtEnd pauses a sandbox whose time ran out and whose record says OnTimeout "pause" (E2B's autoPause).
func (w *Worker) pauseAtEnd(ctx context.Context, sb *sandbox) error {
	if _, ok := sb.rt.(runtime.Pauser); !ok {
		return errNotPausable
	}
	_, err := w.pause(ctx, sb, time.Now().Add(w.cfg.PausedRetention).UTC())
	return err
}
