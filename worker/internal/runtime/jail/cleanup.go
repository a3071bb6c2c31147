package jail

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
)

// found is what Cleanup found of one sandbox on the host.
type found struct {
	present
	entry jailEntry
}

// Cleanup finds this worker's jails (named <prefix>-<id>), epairs (VNET mode, by description), datasets (below SandboxDataset, or directories
// below DataDir/sandboxes), rctl rules (jail:<prefix>-<id>) and pf anchors (<prefix>/<id>), and removes
// every sandbox for which keep returns false. The addresses of kept jails are reserved so that new
// sandboxes do not reuse them. Snapshots are not touched, but deleted ones that waited for their clones
// (see DeleteSnapshot) are destroyed once those are gone.
func (r *Runtime) Cleanup(ctx context.Context, keep func(id string) bool) error {
	all, err := r.inventory(ctx)
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var errs []error
	for _, id := range ids {
		f := all[id]
		if keep != nil && keep(id) {
			if f.entry.Addr.IsValid() {
				r.mu.Lock()
				r.addrs[f.entry.Addr] = id
				r.mu.Unlock()
			}
			continue
		}
		if err := r.teardown(ctx, r.names(id), f.present); err != nil {
			errs = append(errs, fmt.Errorf("cleanup %s: %w", id, err))
			continue
		}
		r.log.Info("removed leftover sandbox", logkey.SandboxID, id)
	}
	if r.cfg.SandboxDataset != "" {
		r.reapDeletedSnapshots(ctx)
	}
	return errors.Join(errs...)
}

// inventory lists every sandbox object of this worker on the host, by sandbox id.
func (r *Runtime) inventory(ctx context.Context) (map[string]*found, error) {
	all := map[string]*found{}
	get := func(id string) *found {
		if all[id] == nil {
			all[id] = &found{}
		}
		return all[id]
	}
	jailPrefix := r.cfg.Prefix + "-"
	out, err := r.run(ctx, jlsCmd(), nil)
	if err != nil {
		return nil, fmt.Errorf("list jails: %w", err)
	}
	jails, err := parseJls(out)
	if err != nil {
		return nil, fmt.Errorf("list jails: %w", err)
	}
	for _, j := range jails {
		if id, ok := strings.CutPrefix(j.Name, jailPrefix); ok && schema.ValidSandboxID(id) {
			f := get(id)
			f.Jail, f.entry = true, j
		}
	}
	if r.cfg.SandboxDataset != "" {
		out, err := r.run(ctx, zfsListCmd(r.cfg.SandboxDataset), nil)
		if err != nil && !gone(err) {
			return nil, fmt.Errorf("list datasets: %w", err)
		}
		for _, id := range parseChildren(out, r.cfg.SandboxDataset) {
			if schema.ValidSandboxID(id) {
				get(id).Root = true
			}
		}
	} else {
		entries, err := os.ReadDir(r.dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("list sandbox directories: %w", err)
		}
		for _, e := range entries {
			if schema.ValidSandboxID(e.Name()) {
				get(e.Name()).Root = true
			}
		}
	}
	if r.cfg.VNETBridge != "" {
		pairs, err := r.epairs(ctx)
		if err != nil {
			return nil, err
		}
		for name, e := range pairs {
			if id, ok := strings.CutPrefix(name, jailPrefix); ok && schema.ValidSandboxID(id) {
				f := get(id)
				f.Epair, f.entry.Addr = e.HostEnd, e.Addr
			}
		}
	}
	out, err = r.run(ctx, rctlListCmd(), nil)
	if err != nil {
		return nil, fmt.Errorf("list rctl rules: %w", err)
	}
	for _, name := range parseRctlJails(out) {
		if id, ok := strings.CutPrefix(name, jailPrefix); ok && schema.ValidSandboxID(id) {
			get(id).Rules = true
		}
	}
	out, err = r.run(ctx, pfAnchorsCmd(r.cfg.Prefix), nil)
	if err != nil {
		return nil, fmt.Errorf("list pf anchors: %w", err)
	}
	for _, id := range parseChildren(out, r.cfg.Prefix) {
		if schema.ValidSandboxID(id) {
			get(id).Anchor = true
		}
	}
	return all, nil
}
