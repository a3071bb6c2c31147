package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"fleetbox.dev/worker/internal/runtime"
)

// Sandbox is one sandbox of the process runtime.
type Sandbox struct {
	id          string
	root        string         // DataDir/sandboxes/<id>, symlinks resolved: the sandbox's "/"
	env         []string       // the sandbox's environment, fixed at Create
	store       *snapshotStore // the runtime's snapshots
	pgid        int            // the holder's pid, the group of every process of the sandbox; 0 until the first (guarded by mu)
	holder      string         // the holder program (sleep)
	killTimeout time.Duration
	log         *slog.Logger
	holderDone  chan struct{} // closed once the holder has exited and been reaped

	mu        sync.Mutex
	destroyed bool // set when Destroy starts: no process may join any more
	// ranCommands is set once a command (not only code contexts) ran: Destroy then also sweeps for
	// processes that left the group.
	ranCommands bool

	destroyMu sync.Mutex // serialises Destroy calls (and Snapshot with them)
	removed   bool       // Destroy finished: nothing is left

	usageMu sync.Mutex
	lastCPU map[int]cpuTime // CPU times of the previous Usage call, by pid
	lastAt  time.Time
}

var (
	_ runtime.Sandbox    = (*Sandbox)(nil)
	_ runtime.OwnerNamer = (*Sandbox)(nil)
)

// ID returns the sandbox id.
func (s *Sandbox) ID() string { return s.id }

// Pgid returns the process group holding every process of the sandbox (0 until a process ran).
func (s *Sandbox) Pgid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pgid
}

// Root returns the host directory that is the sandbox's root.
func (s *Sandbox) Root() string { return s.root }

// Env returns a copy of the sandbox's environment.
func (s *Sandbox) Env() []string { return append([]string(nil), s.env...) }

// Command builds a process inside the sandbox.
func (s *Sandbox) Command(ctx context.Context, argv []string, cwd string, env map[string]string) (*exec.Cmd, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("command: empty argv")
	}
	if cwd == "" {
		cwd = runtime.SandboxHome
	}
	dir, err := s.HostPath(cwd)
	if err != nil {
		return nil, fmt.Errorf("command cwd: %w", err)
	}
	cmdEnv := runtime.MergeEnv(s.env, env)
	bin, err := lookPath(argv[0], runtime.EnvValue(cmdEnv, "PATH"), dir)
	if err != nil {
		return nil, fmt.Errorf("command %s: %w", argv[0], err)
	}
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Dir = dir
	cmd.Env = cmdEnv
	if err := s.Prepare(cmd); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.ranCommands = true
	s.mu.Unlock()
	return cmd, nil
}

// Prepare puts cmd in the sandbox's process group and gives it the sandbox's environment and home
// directory if it has none.
func (s *Sandbox) Prepare(cmd *exec.Cmd) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return fmt.Errorf("prepare command in %s: %w", s.id, runtime.ErrDestroyed)
	}
	if s.pgid == 0 {
		if err := s.startHolderLocked(); err != nil {
			return fmt.Errorf("prepare command in %s: %w", s.id, err)
		}
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	joinGroup(cmd.SysProcAttr, s.pgid)
	if cmd.Env == nil {
		cmd.Env = s.Env()
	}
	if cmd.Dir == "" {
		cmd.Dir = filepath.Join(s.root, runtime.SandboxHome)
	}
	return nil
}

// startHolderLocked starts the process that leads the sandbox's group for the rest of its life (it
// needs no input or output) and records it for Cleanup. s.mu is held.
func (s *Sandbox) startHolderLocked() error {
	h := exec.Command(s.holder, "2147483647")
	h.Dir = s.root
	h.Env = s.env
	h.SysProcAttr = newGroupAttr()
	if err := h.Start(); err != nil {
		return fmt.Errorf("start holder: %w", err)
	}
	pgid := h.Process.Pid
	go func() {
		_ = h.Wait()
		close(s.holderDone)
	}()
	st := state{Pgid: pgid, StartTime: processStartTime(pgid), CreatedAt: time.Now().UTC()}
	if err := writeState(s.root, st); err != nil {
		killGroup(pgid)
		<-s.holderDone
		s.holderDone = make(chan struct{})
		return err
	}
	s.pgid = pgid
	return nil
}

// Destroy kills the process group, reaps the holder and removes the sandbox's directory.
func (s *Sandbox) Destroy(ctx context.Context) error {
	s.destroyMu.Lock()
	defer s.destroyMu.Unlock()
	if s.removed {
		return nil
	}
	s.mu.Lock()
	s.destroyed = true
	pgid := s.pgid
	s.mu.Unlock()
	// Reaping the holder first usually leaves nothing in the group (the worker reaps its other children,
	// the kernels, itself). Then kill until no live member remains: that also catches a process that
	// joined while the first kill was on its way (a Start racing with Destroy). A sandbox that never ran
	// a process has no group.
	if pgid != 0 {
		killGroup(pgid)
		select {
		case <-s.holderDone:
		case <-ctx.Done():
			return fmt.Errorf("destroy %s: reap holder: %w", s.id, ctx.Err())
		}
		if err := waitGroupDead(ctx, pgid, s.killTimeout); err != nil {
			return fmt.Errorf("destroy %s: %w", s.id, err)
		}
	}
	// Processes that left the group (their own sessions or groups) still carry the sandbox's id. Commands
	// (envd processes lead their own groups, and their orphans stay there) are found that way; the sweep
	// reads every process's environment, so it only runs for sandboxes that ran commands: code contexts'
	// processes stay in the sandbox's group (one that calls setsid is found by the next Cleanup).
	s.mu.Lock()
	sweep := s.ranCommands
	s.mu.Unlock()
	if sweep {
		if n := killMarked(map[string]bool{s.id: true}); n > 0 {
			s.log.Debug("killed sandbox processes outside its group", "count", n)
		}
	}
	if err := removeAll(s.root); err != nil {
		return fmt.Errorf("destroy %s: %w", s.id, err)
	}
	s.removed = true
	return nil
}

// OwnerNames names the worker's own user and group, which every process of the sandbox runs as, as
// the sandbox's default user: files the sandbox writes belong to "user", as they do in E2B.
func (s *Sandbox) OwnerNames(uid, gid uint32) (owner, group string) {
	if int(uid) == os.Getuid() {
		owner = runtime.DefaultUser
	}
	if int(gid) == os.Getgid() {
		group = runtime.DefaultUser
	}
	return owner, group
}

// lookPath finds name like a shell would with the sandbox's PATH: names containing a slash are taken as
// they are (relative to dir).
func lookPath(name, pathEnv, dir string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			return "", err
		}
		return p, nil
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s: %w", p, os.ErrPermission)
	}
	return nil
}
