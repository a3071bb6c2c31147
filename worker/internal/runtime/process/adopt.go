package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime"
)

var _ runtime.Adopter = (*Runtime)(nil)

// Adopt takes over the directory of a sandbox an earlier run of the worker left. Its processes are killed:
// they lead groups in the dead worker's session, which this worker cannot join, and their kernels and
// envd streams talked to the dead worker. The sandbox keeps its files and starts a new holder with its next
// process.
func (r *Runtime) Adopt(ctx context.Context, spec runtime.Spec) (runtime.Sandbox, error) {
	if spec.ID == "" || strings.ContainsAny(spec.ID, `/\.`) {
		return nil, fmt.Errorf("adopt sandbox: invalid id %q", spec.ID)
	}
	root := filepath.Join(r.dir, spec.ID)
	fi, err := os.Lstat(root)
	if err != nil {
		return nil, fmt.Errorf("adopt %s: %w", spec.ID, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("adopt %s: %s is not a directory: %w", spec.ID, root, fs.ErrNotExist)
	}
	if err := r.killLeftover(ctx, spec.ID); err != nil {
		return nil, fmt.Errorf("adopt %s: %w", spec.ID, err)
	}
	if n := killMarked(map[string]bool{spec.ID: true}); n > 0 {
		r.log.Info("killed processes of an adopted sandbox outside its group", logkey.SandboxID, spec.ID, "count", n)
	}
	if err := os.Remove(filepath.Join(root, stateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("adopt %s: %w", spec.ID, err)
	}
	s, err := r.create(ctx, root, "", spec)
	if err != nil {
		return nil, fmt.Errorf("adopt %s: %w", spec.ID, err)
	}
	r.log.Info("adopted sandbox", logkey.SandboxID, spec.ID)
	return s, nil
}
