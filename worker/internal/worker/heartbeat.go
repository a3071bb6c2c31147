package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/hostmem"
	"fleetbox.dev/worker/internal/logkey"
)

// heartbeat writes the worker's schema.WorkerInfo under its id in the workers bucket, whose TTL makes
// the key vanish when heartbeats stop.
func (w *Worker) heartbeat(ctx context.Context) error {
	w.mu.Lock()
	info := schema.WorkerInfo{
		ID:        w.id,
		Host:      w.cfg.Host,
		Runtime:   w.rt.Name(),
		Capacity:  w.cfg.Capacity,
		Running:   len(w.sandboxes),
		Version:   w.cfg.Version,
		StartedAt: w.startedAt,
		Draining:  w.draining,
		Egress:    w.rt.Capabilities().Egress,
	}
	w.mu.Unlock()
	if mb, err := hostmem.AvailableMB(); err == nil {
		info.MemoryAvailableMB = mb
	}
	b, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("encode heartbeat: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, max(w.cfg.HeartbeatInterval, time.Second))
	defer cancel()
	if _, err := w.bus.Workers.Put(ctx, w.id, b); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// heartbeatLoop renews the heartbeat every HeartbeatInterval until ctx ends.
func (w *Worker) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := w.heartbeat(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			w.log.Warn("heartbeat failed", logkey.Subsystem, "heartbeat", logkey.Error, err)
			failing = true
		case err == nil && failing:
			w.log.Info("heartbeat restored", logkey.Subsystem, "heartbeat")
			failing = false
		}
	}
}
