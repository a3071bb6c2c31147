package jail

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime"
)

// Snapshots outlive the sandboxes they are taken from.
//
// With ZFS, Snapshot runs
//
//	zfs snapshot <sbx-dataset>/<id>@<name>
//	zfs send <sbx-dataset>/<id>@<name> | zfs recv -u -o canmount=off <SnapshotDataset>/<name>@<name>
//	zfs destroy <sbx-dataset>/<id>@<name>
//
// so that <SnapshotDataset>/<name> is a file system of its own (a full copy: it costs the time to copy the
// sandbox's data) with the snapshot @<name> that sandboxes are cloned from. A failed receive leaves no
// partial file system (it is destroyed), and the temporary snapshot of the sandbox is always destroyed.
// A snapshot that still has clones cannot be destroyed: DeleteSnapshot then renames it to
// <name>-deleted-<time>, which neither Snapshots nor Create see, and the Destroy of its last clone (or the
// next Cleanup) destroys it.
//
// Without ZFS a snapshot is a copy (cp -a, which keeps owners, modes and file flags) of the sandbox's root
// without its devfs, made in DataDir/snapshots/.tmp-<name> and renamed to <name> when complete.

// deletedMark is in the names of deleted snapshots that waited for their clones (never in a valid name).
const deletedMark = "-deleted-"

// snapshotDataset is the file system of snapshot name.
func (r *Runtime) snapshotDataset(name string) string { return r.cfg.SnapshotDataset + "/" + name }

// reserveSnapshot claims name for a snapshot being made: it fails with runtime.ErrExists while another
// is being made under that name.
func (r *Runtime) reserveSnapshot(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.snapBusy[name] {
		return runtime.ErrExists
	}
	r.snapBusy[name] = true
	return nil
}

func (r *Runtime) releaseSnapshot(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.snapBusy, name)
}

// Snapshot captures the jail's file system as snapshot name (crash-consistent: processes keep running;
// pause the sandbox first for a quiet file system). It fails with runtime.ErrExists if name is taken.
func (s *Sandbox) Snapshot(ctx context.Context, name string) error {
	if !schema.ValidSandboxID(name) {
		return fmt.Errorf("snapshot %s: invalid name %q", s.id, name)
	}
	s.mu.Lock()
	destroyed := s.destroyed
	s.mu.Unlock()
	if destroyed {
		return fmt.Errorf("snapshot %s: %w", s.id, runtime.ErrDestroyed)
	}
	if err := s.rt.reserveSnapshot(name); err != nil {
		return fmt.Errorf("snapshot %s as %s: %w", s.id, name, err)
	}
	defer s.rt.releaseSnapshot(name)
	var err error
	if s.n.Dataset != "" {
		err = s.snapshotZFS(ctx, name)
	} else {
		err = s.snapshotCopy(ctx, name)
	}
	if err != nil {
		return fmt.Errorf("snapshot %s as %s: %w", s.id, name, err)
	}
	return nil
}

func (s *Sandbox) snapshotZFS(ctx context.Context, name string) error {
	r := s.rt
	if _, err := r.run(ctx, zfsSnapshotCmd(s.n.Dataset, name), nil); err != nil {
		return err
	}
	dst := r.snapshotDataset(name)
	var errs []error
	if _, err := r.exec.Pipe(ctx, zfsSendCmd(s.n.Dataset+"@"+name), zfsRecvCmd(dst, name)); err != nil {
		if strings.Contains(err.Error(), "exists") {
			errs = append(errs, fmt.Errorf("%w (%w)", runtime.ErrExists, err))
		} else {
			errs = append(errs, fmt.Errorf("send to %s: %w", dst, err))
			// A receive that failed part way may leave the file system behind.
			if _, err := r.run(context.WithoutCancel(ctx), zfsDestroyCmd(dst), nil); err != nil && !gone(err) {
				errs = append(errs, fmt.Errorf("destroy partial %s: %w", dst, err))
			}
		}
	}
	if _, err := r.run(context.WithoutCancel(ctx), zfsDestroySnapshotCmd(s.n.Dataset, name), nil); err != nil && !gone(err) {
		if len(errs) == 0 {
			// The snapshot is made; the temporary one goes with the sandbox's dataset.
			s.log.Warn("snapshot: temporary snapshot left", "snapshot", s.n.Dataset+"@"+name, logkey.Error, err)
		} else {
			errs = append(errs, fmt.Errorf("destroy temporary snapshot: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (s *Sandbox) snapshotCopy(ctx context.Context, name string) error {
	r := s.rt
	dst := filepath.Join(r.snapDir, name)
	if _, err := os.Lstat(dst); err == nil {
		return runtime.ErrExists
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp := filepath.Join(r.snapDir, ".tmp-"+name)
	if _, err := os.Lstat(tmp); err == nil { // left by a crash
		if err := r.removeTree(ctx, tmp); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(r.snapDir, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	if err := s.copyRoot(ctx, tmp); err != nil {
		return errors.Join(err, r.removeTree(context.WithoutCancel(ctx), tmp))
	}
	if err := os.Rename(tmp, dst); err != nil {
		if errors.Is(err, fs.ErrExist) {
			err = runtime.ErrExists
		}
		return errors.Join(err, r.removeTree(context.WithoutCancel(ctx), tmp))
	}
	return nil
}

// copyRoot copies the jail's root into the directory dst, but for the devfs mounted on its /dev: dev is
// an empty directory in the copy.
func (s *Sandbox) copyRoot(ctx context.Context, dst string) error {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return err
	}
	var srcs []string
	hasDev := false
	for _, e := range entries {
		if e.Name() == "dev" {
			hasDev = true
			continue
		}
		srcs = append(srcs, filepath.Join(s.root, e.Name()))
	}
	if len(srcs) > 0 {
		if _, err := s.rt.run(ctx, copyIntoCmd(srcs, dst), nil); err != nil {
			return fmt.Errorf("copy root: %w", err)
		}
	}
	if hasDev {
		if err := os.Mkdir(filepath.Join(dst, "dev"), 0o555); err != nil {
			return err
		}
	}
	return nil
}

// removeTree removes a copied tree (file flags cleared first, as cp -a keeps them).
func (r *Runtime) removeTree(ctx context.Context, dir string) error {
	for _, argv := range removeTreeCmds(dir) {
		if _, err := r.run(ctx, argv, nil); err != nil {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
	}
	return nil
}

// DeleteSnapshot removes snapshot name; a missing one is not an error. Sandboxes made from it live on:
// with ZFS, a snapshot that still has clones is renamed out of sight and destroyed with its last clone.
func (r *Runtime) DeleteSnapshot(ctx context.Context, name string) error {
	if !schema.ValidSandboxID(name) {
		return fmt.Errorf("delete snapshot: invalid name %q", name)
	}
	if r.cfg.SandboxDataset == "" {
		return r.deleteSnapshotCopy(ctx, name)
	}
	ds := r.snapshotDataset(name)
	_, err := r.run(ctx, zfsDestroyCmd(ds), nil)
	switch {
	case err == nil || gone(err):
		return nil
	case strings.Contains(exitStderr(err), "dependent clones"):
		hidden := ds + deletedMark + strconv.FormatInt(r.now().UnixNano(), 10)
		if _, err := r.run(ctx, zfsRenameCmd(ds, hidden), nil); err != nil {
			return fmt.Errorf("delete snapshot %s (in use): %w", name, err)
		}
		return nil
	default:
		return fmt.Errorf("delete snapshot %s: %w", name, err)
	}
}

func (r *Runtime) deleteSnapshotCopy(ctx context.Context, name string) error {
	dir := filepath.Join(r.snapDir, name)
	// Renamed first, the snapshot is gone from Snapshots and Create at once.
	hidden := filepath.Join(r.snapDir, ".del-"+name+"-"+strconv.FormatInt(r.now().UnixNano(), 10))
	if err := os.Rename(dir, hidden); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete snapshot %s: %w", name, err)
	}
	if err := r.removeTree(ctx, hidden); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", name, err)
	}
	return nil
}

// Snapshots lists the snapshots on this host, sorted by name.
func (r *Runtime) Snapshots(ctx context.Context) ([]string, error) {
	var names []string
	if r.cfg.SandboxDataset == "" {
		entries, err := os.ReadDir(r.snapDir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("list snapshots: %w", err)
		}
		for _, e := range entries {
			names = append(names, e.Name())
		}
	} else {
		out, err := r.run(ctx, zfsListCmd(r.cfg.SnapshotDataset), nil)
		if err != nil && !gone(err) {
			return nil, fmt.Errorf("list snapshots: %w", err)
		}
		names = parseChildren(out, r.cfg.SnapshotDataset)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !schema.ValidSandboxID(n) })
	slices.Sort(names)
	return names, nil
}

// reapDeletedSnapshots destroys the deleted snapshots whose clones are all gone; the others stay for
// later. It only logs its failures: nothing waits on it.
func (r *Runtime) reapDeletedSnapshots(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	out, err := r.run(ctx, zfsListCmd(r.cfg.SnapshotDataset), nil)
	if err != nil {
		if !gone(err) {
			r.log.Warn("list deleted snapshots", logkey.Error, err)
		}
		return
	}
	for _, child := range parseChildren(out, r.cfg.SnapshotDataset) {
		if !strings.Contains(child, deletedMark) {
			continue
		}
		ds := r.cfg.SnapshotDataset + "/" + child
		if _, err := r.run(ctx, zfsDestroyCmd(ds), nil); err != nil && !gone(err) && !strings.Contains(exitStderr(err), "dependent clones") {
			r.log.Warn("destroy deleted snapshot", "dataset", ds, logkey.Error, err)
		}
	}
}
