package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"fleetbox.dev/schema"
)

// ErrSnapshotNotFound means no snapshot has the id or name asked for.
var ErrSnapshotNotFound = schema.Errorf(http.StatusNotFound, "snapshot not found")

// PutSnapshot stores a snapshot's record (the worker holding it writes it once the files are captured).
func (b *Bus) PutSnapshot(ctx context.Context, s schema.Snapshot) error {
	v, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode snapshot %s: %w", s.ID, err)
	}
	if _, err := b.Snapshots.Put(ctx, s.ID, v); err != nil {
		return fmt.Errorf("store snapshot %s: %w", s.ID, err)
	}
	return nil
}

// GetSnapshot reads the snapshot whose id is ref, or else the one that has ref among its names.
func (b *Bus) GetSnapshot(ctx context.Context, ref string) (schema.Snapshot, error) {
	if schema.ValidSandboxID(ref) {
		e, err := b.Snapshots.Get(ctx, ref)
		switch {
		case err == nil:
			var s schema.Snapshot
			if err := json.Unmarshal(e.Value(), &s); err != nil {
				return schema.Snapshot{}, fmt.Errorf("decode snapshot %s: %w", ref, err)
			}
			return s, nil
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return schema.Snapshot{}, fmt.Errorf("get snapshot %s: %w", ref, err)
		}
	}
	all, err := b.ListSnapshots(ctx)
	if err != nil {
		return schema.Snapshot{}, err
	}
	for _, s := range all {
		if slices.Contains(s.Names, ref) {
			return s, nil
		}
	}
	return schema.Snapshot{}, fmt.Errorf("get snapshot %s: %w", ref, ErrSnapshotNotFound)
}

// ListSnapshots returns every snapshot, oldest first.
func (b *Bus) ListSnapshots(ctx context.Context) ([]schema.Snapshot, error) {
	w, err := b.Snapshots.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	defer w.Stop()
	var out []schema.Snapshot
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list snapshots: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok || e == nil {
				slices.SortStableFunc(out, func(a, b schema.Snapshot) int { return a.CreatedAt.Compare(b.CreatedAt) })
				return out, nil
			}
			var s schema.Snapshot
			if err := json.Unmarshal(e.Value(), &s); err != nil {
				return nil, fmt.Errorf("decode snapshot %s: %w", e.Key(), err)
			}
			out = append(out, s)
		}
	}
}

// DeleteSnapshot forgets a snapshot; a missing one is not an error.
func (b *Bus) DeleteSnapshot(ctx context.Context, id string) error {
	if err := b.Snapshots.Delete(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	return nil
}
