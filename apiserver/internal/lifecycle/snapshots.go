package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

// MaxSnapshotName bounds the length of a snapshot's name.
const MaxSnapshotName = 128

// ValidateSnapshotName checks a name given to a new snapshot: 1 to MaxSnapshotName characters of
// [A-Za-z0-9._-] starting with a letter or digit (so it is one path segment, and needs no E2B namespace
// or tag), and not the name of a built-in template, which would make `templateID` ambiguous.
func ValidateSnapshotName(name string) error {
	if name == "" || len(name) > MaxSnapshotName {
		return schema.Errorf(http.StatusBadRequest, "snapshot name must be 1 to %d characters long, got %d", MaxSnapshotName, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return schema.Errorf(http.StatusBadRequest,
				"invalid snapshot name %.40q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
	}
	if _, ok := schema.LookupTemplate(name); ok {
		return schema.Errorf(http.StatusConflict, "snapshot name %q is taken by a built-in template", name)
	}
	return nil
}

// bareName strips E2B's namespace and tag from a template or snapshot reference (`team/name:tag` → `name`).
func bareName(ref string) string {
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		ref = ref[i+1:]
	}
	if i := strings.IndexByte(ref, ':'); i >= 0 {
		ref = ref[:i]
	}
	return ref
}

// FindSnapshot finds a snapshot by its id or one of its names. A reference E2B-style qualified with a
// namespace or a tag (`team/name:tag`) finds the snapshot of the bare name when nothing has it whole.
func (s *Service) FindSnapshot(ctx context.Context, ref string) (schema.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	snap, err := s.Bus.GetSnapshot(ctx, ref)
	if bare := bareName(ref); errors.Is(err, schema.ErrNotFound) && bare != ref && bare != "" {
		snap, err = s.Bus.GetSnapshot(ctx, bare)
	}
	if errors.Is(err, schema.ErrNotFound) {
		return schema.Snapshot{}, schema.Errorf(http.StatusNotFound, "snapshot %q not found", ref)
	}
	return snap, err
}

// matchesSnapshot reports whether ref names snap (its id or one of its names, whole or bare).
func matchesSnapshot(snap schema.Snapshot, ref string) bool {
	for _, r := range []string{ref, bareName(ref)} {
		if r == snap.ID || slices.Contains(snap.Names, r) {
			return true
		}
	}
	return false
}

// CreateSnapshot captures a live sandbox's files as a new snapshot, which sandboxes can then be created
// from (by its id or its name). Its names are [name], or [its id] when name is empty; a name another
// snapshot already has is a 409. The sandbox's owner stores the snapshot before it answers.
func (s *Service) CreateSnapshot(ctx context.Context, id, name string) (schema.Snapshot, error) {
	rec, err := s.Get(ctx, id)
	if err != nil {
		return schema.Snapshot{}, err
	}
	if rec.State == schema.StateKilling {
		return schema.Snapshot{}, schema.Errorf(http.StatusNotFound, "sandbox %q not found: it is being killed", id)
	}
	req := schema.SnapshotRequest{ID: schema.NewSandboxID()}
	req.Names = []string{req.ID}
	if name != "" {
		if err := ValidateSnapshotName(name); err != nil {
			return schema.Snapshot{}, err
		}
		_, err := s.Bus.GetSnapshot(ctx, name)
		switch {
		case err == nil:
			return schema.Snapshot{}, schema.Errorf(http.StatusConflict, "a snapshot named %q already exists", name)
		case !errors.Is(err, schema.ErrNotFound):
			return schema.Snapshot{}, err
		}
		req.Names = []string{name}
	}
	return requestWithin[schema.Snapshot](ctx, s, id, schema.OpSnapshot, req, s.SnapshotTimeout)
}

// SnapshotFilter selects and pages snapshots.
type SnapshotFilter struct {
	SandboxID string // only snapshots of this sandbox
	Name      string // only the snapshot with this id or name (possibly `team/name:tag`)
	Limit     int    // 0: no limit
	Next      string // cursor from a previous page
}

// ListSnapshots returns snapshots, newest first, and the cursor of the next page ("" on the last page).
func (s *Service) ListSnapshots(ctx context.Context, f SnapshotFilter) ([]schema.Snapshot, string, error) {
	after, err := decodeCursor(f.Next)
	if err != nil {
		return nil, "", err
	}
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	all, err := s.Bus.ListSnapshots(rctx)
	if err != nil {
		return nil, "", err
	}
	out := all[:0]
	for _, snap := range all {
		if (f.SandboxID == "" || snap.SandboxID == f.SandboxID) && (f.Name == "" || matchesSnapshot(snap, f.Name)) {
			out = append(out, snap)
		}
	}
	key := func(snap schema.Snapshot) cursorKey { return cursorKey{At: snap.CreatedAt, ID: snap.ID} }
	slices.SortFunc(out, func(a, b schema.Snapshot) int { return key(a).compare(key(b)) })
	if after != nil {
		i := sort.Search(len(out), func(i int) bool { return after.compare(key(out[i])) < 0 })
		out = out[i:]
	}
	next := ""
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
		next = encodeCursor(key(out[len(out)-1]))
	}
	return out, next, nil
}

// DeleteSnapshot removes the snapshot that ref names (its id or a name) through the worker holding it,
// which deletes its files and its entry. If that worker is gone for good (no heartbeat), so are the
// files, and the entry is deleted here. Anything but a snapshot is a 404.
func (s *Service) DeleteSnapshot(ctx context.Context, ref string) error {
	snap, err := s.FindSnapshot(ctx, ref)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, s.OpTimeout)
	defer cancel()
	subject := schema.SubjectWorkerOp(snap.Worker, schema.OpSnapshotDelete)
	_, err = requestSubject[schema.Empty](rctx, s, subject, schema.SnapshotDeleteRequest{ID: snap.ID})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, schema.ErrNotFound):
		// Its worker no longer has it (a restart with a new data directory): forget the entry.
		return s.Bus.DeleteSnapshot(ctx, snap.ID)
	case errors.Is(err, bus.ErrNoOwner):
		alive, herr := s.workerAlive(ctx, snap.Worker)
		if herr != nil {
			return herr
		}
		if !alive {
			return s.Bus.DeleteSnapshot(ctx, snap.ID)
		}
	}
	return s.opError(ctx, err, "snapshot "+strconv.Quote(snap.ID), schema.OpSnapshotDelete, s.OpTimeout)
}

// workerAlive reports whether worker still has a heartbeat in the workers bucket.
func (s *Service) workerAlive(ctx context.Context, worker string) (bool, error) {
	_, err := s.Bus.Workers.Get(ctx, worker)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("read heartbeat of worker %s: %w", worker, err)
}

// fromSnapshot makes a pending record one of a sandbox made from snap: the snapshot's template, size and
// environment, its own environment variables overriding the snapshot's.
func fromSnapshot(rec *schema.Record, snap schema.Snapshot, env map[string]string) {
	rec.TemplateID, rec.Snapshot = snap.TemplateID, snap.ID
	rec.Alias = ""
	if len(snap.Names) > 0 && snap.Names[0] != snap.ID {
		rec.Alias = snap.Names[0]
	}
	rec.CPUCount, rec.MemoryMB, rec.DiskSizeMB = snap.CPUCount, snap.MemoryMB, snap.DiskSizeMB
	if len(snap.EnvVars) > 0 {
		merged := maps.Clone(snap.EnvVars)
		maps.Copy(merged, env)
		rec.EnvVars = merged
	}
}

// place asks the worker holding snap to claim the pending record id (a sandbox made from a snapshot
// starts where its files are). A worker that is gone fails the create with a 404 naming the snapshot
// (as ref, the client's name for it); one without a free slot with its 503.
func (s *Service) place(ctx context.Context, id, ref string, snap schema.Snapshot) error {
	rctx, cancel := context.WithTimeout(ctx, s.PlaceTimeout)
	defer cancel()
	subject := schema.SubjectWorkerOp(snap.Worker, schema.OpWorkerCreate)
	_, err := requestSubject[schema.Empty](rctx, s, subject, schema.CreateCommand{SandboxID: id})
	if err == nil {
		return nil
	}
	if errors.Is(err, bus.ErrNoOwner) {
		alive, herr := s.workerAlive(ctx, snap.Worker)
		if herr == nil && !alive {
			s.abandon(id, fmt.Sprintf("the worker holding snapshot %s is gone", snap.ID))
			return schema.Errorf(http.StatusNotFound, "snapshot %q is not available: its worker is gone", ref)
		}
	}
	s.abandon(id, fmt.Sprintf("the worker holding snapshot %s did not take it", snap.ID))
	return s.opError(ctx, err, "snapshot "+strconv.Quote(ref), "create", s.PlaceTimeout)
}
