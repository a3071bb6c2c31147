// Package reaper ends the sandboxes of workers that vanished. One apiserver replica at a time holds the
// reaper lease (a key in the leases bucket, renewed by compare-and-set); the holder watches worker
// heartbeats expire and sweeps the sandbox records periodically: a live record whose owner has had no
// heartbeat (its key expired one worker TTL after the last one) for another half TTL becomes `lost`, a pending record nobody claimed long after any create
// could still wait for it becomes `failed`, and records that ended long ago are deleted.
package reaper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

// LeaseKey is the lease's key in schema.BucketLeases.
const LeaseKey = "reaper"

// Config tunes the reaper.
type Config struct {
	// Holder names this replica in the lease.
	Holder string
	// SweepInterval is how often the holder scans the records (default a third of the worker TTL).
	SweepInterval time.Duration
	// StalePending is how old an unclaimed pending record must be before it is failed.
	StalePending time.Duration
	// Retention is how long ended records are kept so the API can say why a sandbox is gone.
	Retention time.Duration
	Now       func() time.Time
	Log       *slog.Logger
}

// Reaper ends sandboxes whose owners are gone.
type Reaper struct {
	bus *bus.Bus
	cfg Config
	// missingSince remembers when a worker was first seen without a heartbeat.
	missingSince map[string]time.Time
}

// New returns a Reaper with defaults filled in.
func New(b *bus.Bus, cfg Config) *Reaper {
	ttl := b.Config.WorkerTTL
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = ttl / 3
	}
	if cfg.StalePending <= 0 {
		cfg.StalePending = 2 * time.Minute
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Reaper{bus: b, cfg: cfg, missingSince: map[string]time.Time{}}
}

// Run competes for the lease and reaps while it holds it, until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.SweepInterval)
	defer t.Stop()
	var rev uint64
	for {
		var err error
		rev, err = r.holdLease(ctx, rev)
		if err == nil {
			if err := r.Sweep(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Log.Warn("reaper sweep", "error", err)
			}
		} else if !errors.Is(err, errNotHolder) && ctx.Err() == nil {
			r.cfg.Log.Warn("reaper lease", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var errNotHolder = errors.New("another replica holds the reaper lease")

// holdLease takes the lease if it is free, or renews it if this replica holds it at revision rev.
func (r *Reaper) holdLease(ctx context.Context, rev uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v := []byte(r.cfg.Holder)
	if rev != 0 {
		newRev, err := r.bus.Leases.Update(ctx, LeaseKey, v, rev)
		if err == nil {
			return newRev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, fmt.Errorf("renew lease: %w", err)
		}
		r.cfg.Log.Info("reaper lease lost", "holder", r.cfg.Holder)
	}
	newRev, err := r.bus.Leases.Create(ctx, LeaseKey, v)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, errNotHolder
	}
	if err != nil {
		return 0, fmt.Errorf("take lease: %w", err)
	}
	r.cfg.Log.Info("reaper lease taken", "holder", r.cfg.Holder)
	r.missingSince = map[string]time.Time{}
	return newRev, nil
}

// Sweep scans every record once and ends what must end. Tests call it directly.
func (r *Reaper) Sweep(ctx context.Context) error {
	now := r.cfg.Now()
	alive, err := r.liveWorkers(ctx)
	if err != nil {
		return err
	}
	for id := range r.missingSince {
		if alive[id] {
			delete(r.missingSince, id)
		}
	}
	recs, err := r.bus.ListRecords(ctx)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		switch {
		case rec.State.Terminal():
			if !rec.EndedAt.IsZero() && now.Sub(rec.EndedAt) > r.cfg.Retention {
				r.forget(ctx, rec.ID)
			}
		case rec.State == schema.StatePending:
			if now.Sub(rec.CreatedAt) > r.cfg.StalePending {
				r.end(ctx, rec.ID, schema.StateFailed, schema.ReasonCreateTimeout)
			}
		case rec.Worker != "" && !alive[rec.Worker]:
			first, seen := r.missingSince[rec.Worker]
			if !seen {
				r.missingSince[rec.Worker] = now
				first = now
			}
			if now.Sub(first) >= r.bus.Config.WorkerTTL/2 {
				r.end(ctx, rec.ID, schema.StateLost, schema.ReasonWorkerLost)
			}
		}
	}
	return nil
}

// liveWorkers reads the heartbeat bucket: a key exists while its worker renews it.
func (r *Reaper) liveWorkers(ctx context.Context) (map[string]bool, error) {
	w, err := r.bus.Workers.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read heartbeats: %w", err)
	}
	defer w.Stop()
	alive := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok || e == nil {
				return alive, nil
			}
			var info schema.WorkerInfo
			if json.Unmarshal(e.Value(), &info) == nil {
				alive[e.Key()] = true
			}
		}
	}
}

// end moves a record to a terminal state unless it changed meanwhile into one that must not be touched.
func (r *Reaper) end(ctx context.Context, id string, to schema.State, reason string) {
	_, _, err := r.bus.UpdateRecord(ctx, id, func(rec schema.Record) (schema.Record, error) {
		if !schema.CanTransition(rec.State, to) {
			return rec, errSkip
		}
		rec, err := rec.Transition(to, reason)
		rec.EndedAt = r.cfg.Now().UTC()
		return rec, err
	})
	switch {
	case err == nil:
		r.cfg.Log.Info("reaped sandbox", "sandbox_id", id, "state", to, "reason", reason)
	case !errors.Is(err, errSkip):
		r.cfg.Log.Warn("reap sandbox", "sandbox_id", id, "error", err)
	}
}

var errSkip = errors.New("record moved on")

// forget deletes an ended record at the revision it was read, so a concurrent write wins.
func (r *Reaper) forget(ctx context.Context, id string) {
	_, rev, err := r.bus.GetRecord(ctx, id)
	if err == nil {
		err = r.bus.DeleteRecord(ctx, id, rev)
	}
	if err != nil && !errors.Is(err, schema.ErrNotFound) {
		r.cfg.Log.Warn("forget ended sandbox", "sandbox_id", id, "error", err)
	}
}
