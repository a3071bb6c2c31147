package worker

import (
	"context"
	"net/http"

	"fleetbox.dev/schema"
)

// opWorkerCreate takes a create placed on this worker (a sandbox from one of its snapshots): it claims
// the pending record now and starts the sandbox in the background, as the claim loop does for queued
// creates. The apiserver then waits for the record to say running.
func (w *Worker) opWorkerCreate(ctx context.Context, _ string, cmd schema.CreateCommand) (schema.Empty, error) {
	if !schema.ValidSandboxID(cmd.SandboxID) {
		return schema.Empty{}, schema.Errorf(http.StatusBadRequest, "invalid sandbox id %q", cmd.SandboxID)
	}
	w.mu.Lock()
	draining, loop := w.draining, w.loop
	w.mu.Unlock()
	if draining || loop == nil {
		return schema.Empty{}, schema.Errorf(http.StatusServiceUnavailable, "worker %s is not taking sandboxes", w.id)
	}
	return schema.Empty{}, loop.Place(ctx, cmd.SandboxID)
}
