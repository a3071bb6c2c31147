package worker

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
)

const (
	// keptMetrics is how many samples a sandbox keeps: the history GET /sandboxes/{id}/metrics pages over.
	keptMetrics = 120
	// diskWalkLimit bounds the files one sample counts; a sandbox with more reports what it counted.
	diskWalkLimit = 100_000
)

// opMetrics takes a usage sample of the sandbox (processes from the runtime, files from a walk of its
// root) and answers with the samples kept for it, oldest first.
func (w *Worker) opMetrics(ctx context.Context, id string, _ schema.MetricsRequest) ([]schema.Metric, error) {
	sb, err := w.lookupAny(id)
	if err != nil {
		return nil, err
	}
	ur, ok := sb.rt.(runtime.UsageReporter)
	if !ok {
		return nil, schema.Errorf(http.StatusNotImplemented, "the %s runtime reports no usage", w.rt.Name())
	}
	rec, _, err := w.bus.GetRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	u, err := ur.Usage(ctx)
	if errors.Is(err, runtime.ErrDestroyed) {
		return nil, sandboxNotFound(id)
	}
	if err != nil {
		return nil, err
	}
	m := schema.Metric{
		Timestamp: time.Now().UTC(),
		CPUCount:  max(rec.CPUCount, 1),
		MemUsed:   max(u.MemoryBytes, 0),
		MemTotal:  u.MemoryLimitBytes,
		DiskTotal: int64(rec.DiskSizeMB) << 20,
	}
	if m.MemTotal <= 0 {
		m.MemTotal = int64(rec.MemoryMB) << 20
	}
	if u.CPUPercent > 0 {
		m.CPUUsedPct = u.CPUPercent / float64(m.CPUCount)
	}
	if root, err := sb.rt.HostPath("/"); err == nil {
		m.DiskUsed = diskUsed(ctx, root)
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.metrics = append(sb.metrics, m)
	if len(sb.metrics) > keptMetrics {
		sb.metrics = slices.Delete(sb.metrics, 0, len(sb.metrics)-keptMetrics)
	}
	return slices.Clone(sb.metrics), nil
}

// diskUsed adds up the sizes of the regular files below root (not following symlinks), up to
// diskWalkLimit files or until ctx ends.
func diskUsed(ctx context.Context, root string) int64 {
	var total int64
	n := 0
	_ = filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if n++; n > diskWalkLimit || ctx.Err() != nil {
			return filepath.SkipAll
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}
