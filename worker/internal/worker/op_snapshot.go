package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime"
)

// snapshotTimeout bounds one capture (the apiserver waits as long: lifecycle.Service.SnapshotTimeout).
const snapshotTimeout = 5 * time.Minute

// opSnapshot captures a sandbox's file system as a snapshot held by this worker and records it in the
// snapshots bucket. A running sandbox is paused for the capture (so no process writes meanwhile) and
// continues after it; a paused one stays paused.
func (w *Worker) opSnapshot(ctx context.Context, id string, req schema.SnapshotRequest) (schema.Snapshot, error) {
	if !schema.ValidSandboxID(req.ID) {
		return schema.Snapshot{}, schema.Errorf(http.StatusBadRequest, "invalid snapshot id %q", req.ID)
	}
	sb, err := w.lookupAny(id)
	if err != nil {
		return schema.Snapshot{}, err
	}
	snap, ok := sb.rt.(runtime.Snapshotter)
	if !ok {
		return schema.Snapshot{}, schema.Errorf(http.StatusNotImplemented, "the %s runtime cannot snapshot sandboxes", w.rt.Name())
	}
	rec, _, err := w.bus.GetRecord(ctx, id)
	if err != nil {
		return schema.Snapshot{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	// The capture may outlast the operation timeout of the bus (a large sandbox, a zfs send): it has its
	// own bound, as long as the apiserver waits for it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), snapshotTimeout)
	defer cancel()
	sb.lifeMu.Lock()
	defer sb.lifeMu.Unlock()
	if p, ok := sb.rt.(runtime.Pauser); ok && !sb.isPaused() {
		// Resumed however the pause ends: a pause that failed half-way leaves processes stopped.
		defer func() {
			if err := p.Resume(context.WithoutCancel(ctx)); err != nil {
				sb.log.Error("resume after snapshot", logkey.Error, err)
			}
		}()
		if err := p.Pause(ctx); err != nil {
			return schema.Snapshot{}, fmt.Errorf("snapshot %s: pause for the capture: %w", id, err)
		}
	}
	if err := snap.Snapshot(ctx, req.ID); err != nil {
		if errors.Is(err, runtime.ErrExists) {
			return schema.Snapshot{}, schema.Errorf(http.StatusConflict, "snapshot %s already exists", req.ID)
		}
		return schema.Snapshot{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	names := slices.Clone(req.Names)
	if len(names) == 0 {
		names = []string{req.ID}
	}
	s := schema.Snapshot{
		ID: req.ID, Names: names, SandboxID: id, TemplateID: rec.TemplateID,
		CPUCount: rec.CPUCount, MemoryMB: rec.MemoryMB, DiskSizeMB: rec.DiskSizeMB, EnvVars: rec.EnvVars,
		Worker: w.id, Runtime: w.rt.Name(), CreatedAt: time.Now().UTC(),
	}
	if err := w.bus.PutSnapshot(ctx, s); err != nil {
		w.deleteLocalSnapshot(context.WithoutCancel(ctx), req.ID)
		return schema.Snapshot{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	sb.log.Info("snapshot taken", "snapshot", req.ID)
	return s, nil
}

// opSnapshotDelete removes one of this worker's snapshots, files first, then its record.
func (w *Worker) opSnapshotDelete(ctx context.Context, _ string, req schema.SnapshotDeleteRequest) (schema.Empty, error) {
	if !schema.ValidSandboxID(req.ID) {
		return schema.Empty{}, schema.Errorf(http.StatusBadRequest, "invalid snapshot id %q", req.ID)
	}
	store, ok := w.rt.(runtime.SnapshotStore)
	if !ok {
		return schema.Empty{}, schema.Errorf(http.StatusNotImplemented, "the %s runtime has no snapshots", w.rt.Name())
	}
	if err := store.DeleteSnapshot(ctx, req.ID); err != nil {
		return schema.Empty{}, fmt.Errorf("delete snapshot %s: %w", req.ID, err)
	}
	return schema.Empty{}, w.bus.DeleteSnapshot(ctx, req.ID)
}

func (w *Worker) deleteLocalSnapshot(ctx context.Context, name string) {
	if store, ok := w.rt.(runtime.SnapshotStore); ok {
		if err := store.DeleteSnapshot(ctx, name); err != nil {
			w.log.Error("delete snapshot", "snapshot", name, logkey.Error, err)
		}
	}
}

// reconcileSnapshots makes the bucket and this host agree on start-up: records of this worker's snapshots
// whose files are gone are deleted, and files no record names (a capture whose record was never written)
// are removed. It does nothing unless both lists were read.
func (w *Worker) reconcileSnapshots(ctx context.Context) {
	store, ok := w.rt.(runtime.SnapshotStore)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	local, err := store.Snapshots(ctx)
	if err != nil {
		w.log.Warn("list local snapshots", logkey.Error, err)
		return
	}
	all, err := w.bus.ListSnapshots(ctx)
	if err != nil {
		w.log.Warn("list snapshot records", logkey.Error, err)
		return
	}
	recorded := map[string]bool{}
	for _, s := range all {
		if s.Worker != w.id {
			continue
		}
		recorded[s.ID] = true
		if !slices.Contains(local, s.ID) {
			w.log.Warn("snapshot record without files; deleting it", "snapshot", s.ID)
			if err := w.bus.DeleteSnapshot(ctx, s.ID); err != nil {
				w.log.Warn("delete snapshot record", logkey.Error, err)
			}
		}
	}
	for _, name := range local {
		if !recorded[name] {
			w.log.Warn("snapshot files without a record; deleting them", "snapshot", name)
			w.deleteLocalSnapshot(ctx, name)
		}
	}
}
