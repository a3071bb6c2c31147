package lifecycle

import (
	"context"
	"net/http"
	"sync"
	"time"

	"fleetbox.dev/schema"
)

// MaxForks bounds the sandboxes one fork makes.
const MaxForks = 20

// ForkResult is one sandbox of a fork: the sandbox, or why it could not be made.
type ForkResult struct {
	Record schema.Record
	Err    error
}

// Fork makes count new sandboxes, each starting with a copy of a live sandbox's files (not its processes'
// memory), on the sandbox's worker: it snapshots the sandbox, creates the sandboxes from the snapshot
// (inheriting its template, size, environment and metadata), then deletes the snapshot. A failure to
// snapshot fails the fork; a sandbox that fails to start is reported in its result.
func (s *Service) Fork(ctx context.Context, id string, timeout time.Duration, count int) ([]ForkResult, error) {
	if count < 1 || count > MaxForks {
		return nil, schema.Errorf(http.StatusBadRequest, "count must be 1 to %d, got %d", MaxForks, count)
	}
	src, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	snap, err := s.CreateSnapshot(ctx, id, "")
	if err != nil {
		return nil, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.OpTimeout)
		defer cancel()
		if err := s.DeleteSnapshot(dctx, snap.ID); err != nil {
			s.Log.Warn("delete the snapshot of a fork", "sandbox_id", id, "snapshot", snap.ID, "error", err)
		}
	}()
	out := make([]ForkResult, count)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, err := s.Create(ctx, CreateParams{
				TemplateRef: snap.ID, Timeout: timeout, Secure: src.AccessToken != "", Metadata: src.Metadata,
				AllowInternet: src.AllowInternet, Egress: src.Egress, ForkOf: id,
			})
			out[i] = ForkResult{Record: rec, Err: err}
		}()
	}
	wg.Wait()
	return out, nil
}
