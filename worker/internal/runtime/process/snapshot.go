package process

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
)

// Snapshots are copies of sandbox roots in DataDir/snapshots/<name>. A snapshot is written as
// .tmp-<name>-<random> beside its final name and renamed when complete, so a half copy (a crash, a
// failure) never counts as a snapshot; a deletion renames it to .del-<name>-<random> first, so it
// vanishes at once. Cleanup removes what such dot entries a crash left; it never removes snapshots.

// Prefixes of the entries of the snapshot directory that are not snapshots (snapshot names are
// schema.ValidSandboxIDs: they have no dots).
const (
	tmpPrefix = ".tmp-"
	delPrefix = ".del-"
)

var (
	_ runtime.Snapshotter   = (*Sandbox)(nil)
	_ runtime.SnapshotStore = (*Runtime)(nil)
)

// snapshotStore is the runtime's snapshot directory, shared by its sandboxes.
type snapshotStore struct {
	dir string

	mu   sync.Mutex
	busy map[string]bool // names being written
}

// path returns the directory of snapshot name, or an error if name is not a valid snapshot name.
func (st *snapshotStore) path(name string) (string, error) {
	if !schema.ValidSandboxID(name) {
		return "", fmt.Errorf("invalid snapshot name %q", name)
	}
	return filepath.Join(st.dir, name), nil
}

// reserve claims name for a new snapshot: it fails with runtime.ErrExists if the snapshot exists or is
// being written.
func (st *snapshotStore) reserve(name string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.busy[name] {
		return runtime.ErrExists
	}
	if _, err := os.Lstat(filepath.Join(st.dir, name)); err == nil {
		return runtime.ErrExists
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	st.busy[name] = true
	return nil
}

func (st *snapshotStore) release(name string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.busy, name)
}

// Snapshot copies the sandbox's root (without the runtime's state file) to snapshot name. Files are
// copied as copyTree does, while the sandbox's processes may still write them: the copy is of files, not
// of one instant (pause the sandbox first for that).
func (s *Sandbox) Snapshot(ctx context.Context, name string) error {
	dst, err := s.store.path(name)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", s.id, err)
	}
	// destroyMu: Destroy does not remove the root under the copy.
	s.destroyMu.Lock()
	defer s.destroyMu.Unlock()
	if s.removed {
		return fmt.Errorf("snapshot %s: %w", s.id, runtime.ErrDestroyed)
	}
	if err := s.store.reserve(name); err != nil {
		return fmt.Errorf("snapshot %s as %s: %w", s.id, name, err)
	}
	defer s.store.release(name)
	tmp, err := os.MkdirTemp(s.store.dir, tmpPrefix+name+"-")
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", s.id, err)
	}
	if err := copyTree(ctx, s.root, tmp, stateFile, stateFile+".tmp"); err != nil {
		return errors.Join(fmt.Errorf("snapshot %s: %w", s.id, err), removeAll(tmp))
	}
	if err := os.Rename(tmp, dst); err != nil {
		return errors.Join(fmt.Errorf("snapshot %s: %w", s.id, err), removeAll(tmp))
	}
	return nil
}

// DeleteSnapshot removes snapshot name; a missing one is not an error. Sandboxes made from it are
// copies and live on.
func (r *Runtime) DeleteSnapshot(_ context.Context, name string) error {
	dir, err := r.snaps.path(name)
	if err != nil {
		return fmt.Errorf("delete snapshot: %w", err)
	}
	// Renamed first, the snapshot is gone from the listing and from Create at once.
	gone := filepath.Join(r.snaps.dir, delPrefix+name+"-"+strings.ToLower(rand.Text()))
	if err := os.Rename(dir, gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete snapshot %s: %w", name, err)
	}
	if err := removeAll(gone); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", name, err)
	}
	return nil
}

// Snapshots lists the snapshots, sorted by name.
func (r *Runtime) Snapshots(context.Context) ([]string, error) {
	entries, err := os.ReadDir(r.snaps.dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && schema.ValidSandboxID(e.Name()) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// removeSnapshotLeftovers removes the partial copies and half-deleted snapshots a crash left behind.
func (r *Runtime) removeSnapshotLeftovers() error {
	entries, err := os.ReadDir(r.snaps.dir)
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, tmpPrefix) || strings.HasPrefix(n, delPrefix) {
			if err := removeAll(filepath.Join(r.snaps.dir, n)); err != nil {
				errs = append(errs, fmt.Errorf("remove snapshot leftover %s: %w", n, err))
			}
		}
	}
	return errors.Join(errs...)
}
