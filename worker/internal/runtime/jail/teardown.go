package jail

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"fleetbox.dev/worker/internal/runtime/executor"
)

// undoTimeout bounds a teardown that runs after the caller's context ended (a failed or cancelled Create).
const undoTimeout = 30 * time.Second

// present says which of a sandbox's host objects exist and must be removed.
type present struct {
	Anchor bool   // pf anchor <prefix>/<id>
	Rules  bool   // rctl rules of jail:<prefix>-<id>
	Jail   bool   // the jail
	Epair  string // host end of the jail's epair (VNET mode)
	Root   bool   // the clone (or the copied directory)
}

// teardown removes what p names: the jail (killing its processes) while its pf anchor and rctl rules
// still apply, then the anchor, the rules, its epair, its devfs if still mounted, and the root file system. It goes on past failures
// and returns them joined, except that it never removes a root that still has devfs mounted in it.
// Objects that are already gone are not an error.
func (r *Runtime) teardown(ctx context.Context, n names, p present) error {
	var errs []error
	step := func(what string, argv []string) error {
		if _, err := r.run(ctx, argv, nil); err != nil && !gone(err) {
			err = fmt.Errorf("%s: %w", what, err)
			errs = append(errs, err)
			return err
		}
		return nil
	}
	// The jail goes first: its egress policy and limits hold until its last process is gone.
	if p.Jail {
		_ = step("remove jail", jailRemoveCmd(n.Jail))
	}
	if p.Anchor {
		_ = step("flush pf anchor", pfFlushCmd(n.Anchor))
	}
	if p.Rules {
		_ = step("remove rctl rules", rctlRemoveCmd(n.Jail))
	}
	if p.Epair != "" {
		_ = step("destroy epair", epairDestroyCmd(p.Epair))
	}
	if p.Root {
		if err := r.unmountDevfs(ctx, n.Root); err != nil {
			errs = append(errs, err)
			return errors.Join(errs...)
		}
		if n.Dataset != "" {
			_ = step("destroy dataset", zfsDestroyCmd(n.Dataset))
		} else if _, err := os.Lstat(n.Root); err == nil {
			for _, argv := range removeTreeCmds(n.Root) {
				if step("remove root", argv) != nil {
					break
				}
			}
		}
	}
	return errors.Join(errs...)
}

// unmountDevfs unmounts the devfs below root if one is mounted (jail -r normally does it).
func (r *Runtime) unmountDevfs(ctx context.Context, root string) error {
	out, err := r.run(ctx, devfsMountsCmd(), nil)
	if err != nil {
		return fmt.Errorf("list devfs mounts: %w", err)
	}
	dev := root + "/dev"
	if !slices.Contains(parseDevfsMounts(out), dev) {
		return nil
	}
	if _, err := r.run(ctx, umountCmd(dev), nil); err != nil {
		return fmt.Errorf("unmount %s: %w", dev, err)
	}
	return nil
}

// gone reports whether a failed command failed because its object does not exist (so removing it again
// is done, not an error).
func gone(err error) bool {
	var ee *executor.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	msg := strings.ToLower(ee.Stderr)
	for _, s := range []string{"not found", "does not exist", "no such"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// undo runs teardown after a failed Create, even when ctx has ended.
func (r *Runtime) undo(ctx context.Context, n names, p present) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	return r.teardown(ctx, n, p)
}
