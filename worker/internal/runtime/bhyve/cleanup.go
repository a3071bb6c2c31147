package bhyve

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime/executor"
)

// Cleanup finds this worker's VMs (vmm instances in VMMDir named <prefix>-<id>), taps (described
// <prefix>-<id>) and disks (volumes below VMDataset), and removes every VM for which keep returns false.
func (r *Runtime) Cleanup(ctx context.Context, keep func(id string) bool) error {
	type leftover struct {
		vmm  bool
		tap  string
		disk bool
	}
	all := map[string]*leftover{}
	get := func(id string) *leftover {
		if all[id] == nil {
			all[id] = &leftover{}
		}
		return all[id]
	}
	prefix := r.cfg.Prefix + "-"
	entries, err := os.ReadDir(r.cfg.VMMDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cleanup: list vmm instances: %w", err)
	}
	for _, e := range entries {
		if id, ok := strings.CutPrefix(e.Name(), prefix); ok && schema.ValidSandboxID(id) {
			get(id).vmm = true
		}
	}
	out, err := r.run(ctx, tapListCmd())
	if err != nil && executor.ExitCode(err) != 1 { // no tap interfaces: ifconfig -g finds nothing
		return fmt.Errorf("cleanup: list taps: %w", err)
	}
	for _, tap := range parseIfaceNames(out) {
		show, err := r.run(ctx, tapShowCmd(tap))
		if err != nil {
			continue // destroyed meanwhile
		}
		if id, ok := strings.CutPrefix(parseDescription(show), prefix); ok && schema.ValidSandboxID(id) {
			get(id).tap = tap
		}
	}
	out, err = r.run(ctx, zfsListCmd(r.cfg.VMDataset))
	if err != nil && !gone(err) {
		return fmt.Errorf("cleanup: list disks: %w", err)
	}
	for _, id := range parseChildren(out, r.cfg.VMDataset) {
		if schema.ValidSandboxID(id) {
			get(id).disk = true
		}
	}
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var errs []error
	for _, id := range ids {
		if keep != nil && keep(id) {
			continue
		}
		l := all[id]
		var vmName, dataset string
		if l.vmm {
			vmName = prefix + id
		}
		if l.disk {
			dataset = r.cfg.VMDataset + "/" + id
		}
		if err := r.teardown(ctx, vmName, l.tap, dataset, filepath.Join(r.dir, id)); err != nil {
			errs = append(errs, fmt.Errorf("cleanup %s: %w", id, err))
			continue
		}
		r.log.Info("removed leftover vm", logkey.SandboxID, id)
	}
	return errors.Join(errs...)
}

func exitStderr(err error) string {
	var ee *executor.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return ""
}
