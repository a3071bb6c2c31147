// Package process is the Linux development runtime (it builds and runs on any unix): each sandbox is a
// directory <data>/sandboxes/<id>/ that serves as its root, with home/user and tmp in it, and one process
// group that holds every process of the sandbox.
//
// The group is led by a holder process (a `sleep` that lives as long as the sandbox) started by Create.
// Every later process joins the holder's group. A holder instead of "the first process leads" because the
// group must outlive any single process: the code kernel of a context is restarted, commands come and go,
// and a group whose leader and members have all exited cannot be joined again (setpgid fails), so its id
// would change under concurrent starts. With a holder the group id is fixed for the sandbox's life, it is
// the one number the state file needs for Cleanup after a crash, and Destroy is one kill(-pgid).
//
// Processes that lead groups of their own (envd commands and terminals, which the worker kills itself,
// and anything that calls setsid) are not in the holder's group. On Linux, Destroy and Cleanup also
// kill every process whose environment carries the sandbox's E2B_SANDBOX_ID, so those do not outlive
// the sandbox; elsewhere Destroy only kills the group.
//
// Pause stops every process of the sandbox with SIGSTOP (pause.go), Usage reads /proc (usage.go), and
// snapshots are copies of sandbox roots under DataDir/snapshots (snapshot.go) that new sandboxes start
// from (Spec.Snapshot).
//
// This is not isolation: sandbox processes run as the worker's user and see the host's file system.
// Both of the sandbox's users ("user" and "root") are the worker's user, and files it owns are named
// as the sandbox user's (OwnerNames). Linux namespaces and cgroups are a later step.
package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime"
)

// Name is the runtime's name in configuration and heartbeats.
const Name = "process"

// Config configures the process runtime.
type Config struct {
	// DataDir holds the sandboxes, as DataDir/sandboxes/<id>/, and the snapshots, as
	// DataDir/snapshots/<name>/.
	DataDir string
	// HolderPath is the program that holds a sandbox's process group; default: `sleep` on the PATH.
	HolderPath string
	// KillTimeout bounds how long Destroy waits for the processes of a sandbox to die; default 5 s.
	KillTimeout time.Duration
	Logger      *slog.Logger
}

// Runtime is the process runtime.
type Runtime struct {
	dir         string // DataDir/sandboxes, with symlinks resolved
	snaps       *snapshotStore
	holder      string
	killTimeout time.Duration
	log         *slog.Logger
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns a process runtime that keeps its sandboxes under cfg.DataDir.
func New(cfg Config) (*Runtime, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("process runtime: no data directory")
	}
	dir := filepath.Join(cfg.DataDir, "sandboxes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("process runtime: %w", err)
	}
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("process runtime: %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("process runtime: %w", err)
	}
	snapDir := filepath.Join(cfg.DataDir, "snapshots")
	if err := os.MkdirAll(snapDir, 0o755); err != nil {
		return nil, fmt.Errorf("process runtime: %w", err)
	}
	holder := cfg.HolderPath
	if holder == "" {
		if holder, err = exec.LookPath("sleep"); err != nil {
			return nil, fmt.Errorf("process runtime: holder program: %w", err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	kt := cfg.KillTimeout
	if kt <= 0 {
		kt = 5 * time.Second
	}
	return &Runtime{
		dir:         dir,
		snaps:       &snapshotStore{dir: snapDir, busy: map[string]bool{}},
		holder:      holder,
		killTimeout: kt,
		log:         log.With(logkey.Subsystem, "runtime"),
	}, nil
}

// Name returns "process".
func (r *Runtime) Name() string { return Name }

// Create makes the sandbox's directories (a copy of snapshot Spec.Snapshot if set: an unknown one is an
// error matching fs.ErrNotExist). The holder process starts with the sandbox's first process.
func (r *Runtime) Create(ctx context.Context, spec runtime.Spec) (runtime.Sandbox, error) {
	if spec.ID == "" || strings.ContainsAny(spec.ID, `/\.`) {
		return nil, fmt.Errorf("create sandbox: invalid id %q", spec.ID)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", spec.ID, err)
	}
	var snap string
	if spec.Snapshot != "" {
		var err error
		if snap, err = r.snaps.path(spec.Snapshot); err != nil {
			return nil, fmt.Errorf("create sandbox %s: %w", spec.ID, err)
		}
		if fi, err := os.Stat(snap); err != nil {
			return nil, fmt.Errorf("create sandbox %s from snapshot: %w", spec.ID, err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("create sandbox %s: snapshot %s is not a directory", spec.ID, spec.Snapshot)
		}
	}
	root := filepath.Join(r.dir, spec.ID)
	if err := os.Mkdir(root, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create sandbox %s: %w", spec.ID, runtime.ErrExists)
		}
		return nil, fmt.Errorf("create sandbox %s: %w", spec.ID, err)
	}
	s, err := r.create(ctx, root, snap, spec)
	if err != nil {
		_ = removeAll(root)
		return nil, fmt.Errorf("create sandbox %s: %w", spec.ID, err)
	}
	return s, nil
}

func (r *Runtime) create(ctx context.Context, root, snap string, spec runtime.Spec) (*Sandbox, error) {
	if snap != "" {
		if err := copyTree(ctx, snap, root); err != nil {
			return nil, fmt.Errorf("copy snapshot %s: %w", spec.Snapshot, err)
		}
	}
	for _, d := range []string{"home/user", "root", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	s := &Sandbox{
		id:          spec.ID,
		root:        root,
		env:         sandboxEnv(root, spec.ID, spec.EnvVars),
		store:       r.snaps,
		holder:      r.holder,
		killTimeout: r.killTimeout,
		log:         r.log.With(logkey.SandboxID, spec.ID),
		holderDone:  make(chan struct{}),
	}
	// The holder that leads the sandbox's process group starts with the first process (see
	// startHolderLocked): a sandbox that never runs anything costs two directories and no process.
	return s, nil
}

// Cleanup kills the processes and removes the directories of sandboxes left by an earlier run, and the
// partial snapshot copies a crash left (never a snapshot).
func (r *Runtime) Cleanup(ctx context.Context, keep func(id string) bool) error {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	if err := r.removeSnapshotLeftovers(); err != nil {
		r.log.Warn("cleanup: snapshot leftovers", logkey.Error, err)
	}
	gone := map[string]bool{}
	for _, e := range entries {
		if id := e.Name(); keep == nil || !keep(id) {
			gone[id] = true
		}
	}
	if len(gone) == 0 {
		return nil
	}
	var errs []error
	for id := range gone {
		if err := r.killLeftover(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	// Members that lost their holder, or left the group, still carry the sandbox's id in their environment.
	if n := killMarked(gone); n > 0 {
		r.log.Info("killed leftover sandbox processes outside their groups", "count", n)
	}
	for id := range gone {
		if err := removeAll(filepath.Join(r.dir, id)); err != nil {
			errs = append(errs, fmt.Errorf("cleanup %s: %w", id, err))
			continue
		}
		r.log.Info("removed leftover sandbox", logkey.SandboxID, id)
	}
	return errors.Join(errs...)
}

// killLeftover kills the process group of a leftover sandbox, if its holder is still the process the
// state file names (a pid can be reused).
func (r *Runtime) killLeftover(ctx context.Context, id string) error {
	st, err := readState(filepath.Join(r.dir, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		r.log.Warn("unreadable sandbox state; removing its directory only", logkey.SandboxID, id, logkey.Error, err)
		return nil
	}
	if !holderAlive(st) {
		return nil
	}
	r.log.Info("killing leftover sandbox processes", logkey.SandboxID, id, "pgid", st.Pgid)
	if err := waitGroupDead(ctx, st.Pgid, r.killTimeout); err != nil {
		return fmt.Errorf("cleanup %s: %w", id, err)
	}
	return nil
}

// removeAll removes a directory tree, retrying briefly while dying processes still create files in it.
// Directories a sandbox made read-only (which a worker that is not root cannot empty) are made writable
// first when a plain removal fails.
func removeAll(dir string) error {
	var err error
	for i := range 5 {
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		if i == 0 {
			makeDirsWritable(dir)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// makeDirsWritable gives the owner full access to every directory below dir (symlinks are not followed).
// WalkDir calls fn for a directory before it reads it, so an unreadable one is readable by then.
func makeDirsWritable(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, _ error) error {
		if d != nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
}

// Capabilities: processes share the host's file system and isolate nothing.
func (r *Runtime) Capabilities() runtime.Capabilities { return runtime.Capabilities{} }
