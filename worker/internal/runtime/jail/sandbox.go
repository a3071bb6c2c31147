package jail

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
)

// pauseRounds bounds how often Pause signals the jail before giving up on a process that keeps forking.
const pauseRounds = 10

// Sandbox is one jail.
type Sandbox struct {
	rt   *Runtime
	n    names
	id   string
	root string
	addr netip.Addr
	env  []string
	lim  limits // the rctl limits set at create
	// snapshot is Spec.Snapshot: the snapshot the sandbox's root was cloned (or copied) from.
	snapshot string
	// epair is the host end of the jail's epair in VNET mode, set by create.
	epair string
	log   *slog.Logger

	mu        sync.Mutex
	jid       int
	egress    runtime.Egress
	destroyed bool // Destroy started: no process may start any more
	removed   bool // Destroy finished
}

var (
	_ runtime.Sandbox       = (*Sandbox)(nil)
	_ runtime.Pauser        = (*Sandbox)(nil)
	_ runtime.Snapshotter   = (*Sandbox)(nil)
	_ runtime.UsageReporter = (*Sandbox)(nil)
	_ runtime.FileOwner     = (*Sandbox)(nil)
)

// create makes the sandbox's objects, undoing the ones made when a step fails.
func (s *Sandbox) create(ctx context.Context, spec runtime.Spec) error {
	r, n := s.rt, s.n
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return fmt.Errorf("make sandboxes directory: %w", err)
	}
	if n.Dataset != "" {
		snap := r.cfg.TemplateDataset + "/" + spec.TemplateID + "@" + r.cfg.TemplateSnapshot
		if spec.Snapshot != "" {
			snap = r.snapshotDataset(spec.Snapshot) + "@" + spec.Snapshot
		}
		// A failed clone makes nothing: there is nothing to undo.
		if _, err := r.run(ctx, zfsCloneCmd(snap, n.Dataset, n.Root), nil); err != nil {
			msg := exitStderr(err)
			switch {
			case strings.Contains(msg, "already exists"):
				return fmt.Errorf("clone %s: %w", snap, runtime.ErrExists)
			case spec.Snapshot != "" && strings.Contains(msg, snap) && strings.Contains(msg, "does not exist"):
				return fmt.Errorf("clone snapshot %s: %w (%w)", spec.Snapshot, fs.ErrNotExist, err)
			}
			return fmt.Errorf("clone %s: %w", snap, err)
		}
	} else {
		if _, err := os.Lstat(n.Root); err == nil {
			return fmt.Errorf("copy template: %w", runtime.ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("copy template: %w", err)
		}
		src := filepath.Join(r.cfg.TemplateDir, spec.TemplateID)
		if spec.Snapshot != "" {
			src = filepath.Join(r.snapDir, spec.Snapshot)
			if _, err := os.Stat(src); err != nil {
				return fmt.Errorf("copy snapshot %s: %w", spec.Snapshot, err)
			}
		}
		if _, err := r.run(ctx, copyCmd(src, n.Root), nil); err != nil {
			return errors.Join(fmt.Errorf("copy %s: %w", src, err), r.undo(ctx, n, present{Root: true}))
		}
	}
	done := present{Root: true}
	jp := jailParams{
		Name: n.Jail, Path: n.Root, Hostname: s.id, Interface: r.cfg.Interface, Addr: s.addr,
		DevfsRuleset: r.cfg.DevfsRuleset, Securelevel: r.cfg.Securelevel,
	}
	if r.cfg.VNETBridge != "" {
		out, err := r.run(ctx, epairCreateCmd(), nil)
		if err != nil {
			return errors.Join(fmt.Errorf("create epair: %w", err), r.undo(ctx, n, done))
		}
		hostEnd, jailEnd, err := parseEpair(out)
		if err != nil {
			return errors.Join(fmt.Errorf("create epair: %w", err), r.undo(ctx, n, done))
		}
		s.epair, done.Epair, jp.VNETInterface = hostEnd, hostEnd, jailEnd
		for _, argv := range epairSetupCmds(hostEnd, r.cfg.VNETBridge, epairDesc(n.Jail, s.addr)) {
			if _, err := r.run(ctx, argv, nil); err != nil {
				return errors.Join(fmt.Errorf("set up %s: %w", hostEnd, err), r.undo(ctx, n, done))
			}
		}
	}
	out, err := r.run(ctx, jailCreateCmd(jp), nil)
	if err != nil {
		return errors.Join(fmt.Errorf("start jail: %w", err), r.undo(ctx, n, done))
	}
	done.Jail = true
	jid, err := parseJID(out)
	if err != nil {
		return errors.Join(fmt.Errorf("start jail: %w", err), r.undo(ctx, n, done))
	}
	s.jid = jid
	if jp.VNETInterface != "" {
		gw := r.cfg.Subnet.Addr().Next()
		for _, argv := range vnetConfigCmds(n.Jail, jp.VNETInterface, s.addr, r.cfg.Subnet.Bits(), gw) {
			if _, err := r.run(ctx, argv, nil); err != nil {
				return errors.Join(fmt.Errorf("configure jail network: %w", err), r.undo(ctx, n, done))
			}
		}
	}
	done.Rules = true
	for _, argv := range rctlAddCmds(n.Jail, r.limitsFor(spec)) {
		if _, err := r.run(ctx, argv, nil); err != nil {
			return errors.Join(fmt.Errorf("set limits: %w", err), r.undo(ctx, n, done))
		}
	}
	done.Anchor = true
	if _, err := r.run(ctx, pfLoadCmd(n.Anchor), pfRules(s.id, s.addr, s.egress)); err != nil {
		return errors.Join(fmt.Errorf("load egress policy: %w", err), r.undo(ctx, n, done))
	}
	return nil
}

// ID returns the sandbox id.
func (s *Sandbox) ID() string { return s.id }

// JID returns the jail's id.
func (s *Sandbox) JID() int { return s.jid }

// Addr returns the jail's IPv4 address.
func (s *Sandbox) Addr() netip.Addr { return s.addr }

// Env returns a copy of the sandbox's environment (paths as the jail sees them).
func (s *Sandbox) Env() []string { return slices.Clone(s.env) }

// Command builds a process that runs in the jail: argv[0] is looked up on the sandbox's PATH inside the
// jail's root, and the process's path and working directory are the jail's own.
func (s *Sandbox) Command(ctx context.Context, argv []string, cwd string, env map[string]string) (*exec.Cmd, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("command: empty argv")
	}
	s.mu.Lock()
	destroyed := s.destroyed
	s.mu.Unlock()
	if destroyed {
		return nil, fmt.Errorf("command in %s: %w", s.id, runtime.ErrDestroyed)
	}
	if cwd == "" {
		cwd = runtime.SandboxHome
	}
	if !path.IsAbs(cwd) {
		cwd = path.Join(runtime.SandboxHome, cwd)
	}
	if _, err := s.HostPath(cwd); err != nil {
		return nil, fmt.Errorf("command cwd: %w", err)
	}
	cmdEnv := runtime.MergeEnv(s.env, env)
	bin, err := s.lookPath(argv[0], runtime.EnvValue(cmdEnv, "PATH"), path.Clean(cwd))
	if err != nil {
		return nil, fmt.Errorf("command %s: %w", argv[0], err)
	}
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Dir = path.Clean(cwd)
	cmd.Env = cmdEnv
	if err := s.Prepare(cmd); err != nil {
		return nil, err
	}
	return cmd, nil
}

// lookPath finds name like a shell in the jail would and returns its path inside the jail.
func (s *Sandbox) lookPath(name, pathEnv, cwd string) (string, error) {
	var cands []string
	if strings.Contains(name, "/") {
		if !path.IsAbs(name) {
			name = path.Join(cwd, name)
		}
		cands = []string{path.Clean(name)}
	} else {
		for _, d := range strings.Split(pathEnv, ":") {
			if path.IsAbs(d) {
				cands = append(cands, path.Join(d, name))
			}
		}
	}
	for _, c := range cands {
		host, err := s.HostPath(c)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(host); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", exec.ErrNotFound
}

// Prepare makes cmd enter the jail when it starts (FreeBSD only), as the sandbox user unless the caller set
// credentials. cmd.Path and cmd.Dir are paths inside the jail: the child attaches to the jail before it
// changes credentials, directory and executes.
func (s *Sandbox) Prepare(cmd *exec.Cmd) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return fmt.Errorf("prepare command in %s: %w", s.id, runtime.ErrDestroyed)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Credential == nil && s.rt.cfg.UID > 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(s.rt.cfg.UID), Gid: uint32(max(s.rt.cfg.GID, 0))}
	}
	if err := attach(cmd.SysProcAttr, s.jid); err != nil {
		return fmt.Errorf("prepare command in %s: %w", s.id, err)
	}
	if cmd.Env == nil {
		cmd.Env = slices.Clone(s.env)
	}
	if cmd.Dir == "" {
		cmd.Dir = runtime.SandboxHome
	}
	return nil
}

// Destroy removes the pf anchor and rctl rules, removes the jail (killing every process in it) and
// destroys its root file system. It is idempotent; after a failure, calling it again retries every step.
func (s *Sandbox) Destroy(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return nil
	}
	s.destroyed = true
	// SIGKILL first: jail -r would send SIGTERM and wait out stop.timeout for processes that ignore it, or
	// that cannot act on it because the sandbox is paused (SIGKILL ends stopped processes too).
	if s.jid > 0 {
		if _, err := s.rt.run(ctx, pkillCmd("KILL", s.jid), nil); err != nil && executor.ExitCode(err) != 1 {
			s.log.Warn("kill the jail's processes before removing it", "error", err)
		}
	}
	if err := s.rt.teardown(ctx, s.n, present{Anchor: true, Rules: true, Jail: true, Epair: s.epair, Root: true}); err != nil {
		return fmt.Errorf("destroy %s: %w", s.id, err)
	}
	s.removed = true
	s.rt.freeAddr(s.addr)
	if s.snapshot != "" && s.n.Dataset != "" {
		// The snapshot this clone came from may have been deleted while the clone lived (see
		// DeleteSnapshot): it can go now if this was its last clone.
		s.rt.reapDeletedSnapshots(ctx)
	}
	return nil
}

// Pause stops every process of the jail (SIGSTOP), repeating until ps shows none runnable: a process can
// fork between pkill's scan and its signal.
func (s *Sandbox) Pause(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return fmt.Errorf("pause %s: %w", s.id, runtime.ErrDestroyed)
	}
	for range pauseRounds {
		if err := s.signal(ctx, "STOP"); err != nil {
			return fmt.Errorf("pause %s: %w", s.id, err)
		}
		out, err := s.rt.run(ctx, psStatesCmd(s.jid), nil)
		if err != nil && executor.ExitCode(err) != 1 {
			return fmt.Errorf("pause %s: list processes: %w", s.id, err)
		}
		if allStopped(out) {
			return nil
		}
	}
	return fmt.Errorf("pause %s: processes still runnable after %d rounds of SIGSTOP", s.id, pauseRounds)
}

// Resume continues every process of the jail (SIGCONT).
func (s *Sandbox) Resume(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return fmt.Errorf("resume %s: %w", s.id, runtime.ErrDestroyed)
	}
	if err := s.signal(ctx, "CONT"); err != nil {
		return fmt.Errorf("resume %s: %w", s.id, err)
	}
	return nil
}

// signal sends sig to every process of the jail; a jail without processes is not an error (pkill exits 1
// when nothing matched).
func (s *Sandbox) signal(ctx context.Context, sig string) error {
	if _, err := s.rt.run(ctx, pkillCmd(sig, s.jid), nil); err != nil && executor.ExitCode(err) != 1 {
		return fmt.Errorf("signal %s: %w", sig, err)
	}
	return nil
}

// SetEgress replaces the sandbox's egress policy, live.
func (s *Sandbox) SetEgress(ctx context.Context, e runtime.Egress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return fmt.Errorf("set egress of %s: %w", s.id, runtime.ErrDestroyed)
	}
	if _, err := s.rt.run(ctx, pfLoadCmd(s.n.Anchor), pfRules(s.id, s.addr, e)); err != nil {
		return fmt.Errorf("set egress of %s: %w", s.id, err)
	}
	s.egress = cloneEgress(e)
	return nil
}

func cloneEgress(e runtime.Egress) runtime.Egress {
	return runtime.Egress{AllowAll: e.AllowAll, Allow: slices.Clone(e.Allow), Deny: slices.Clone(e.Deny)}
}

// Usage returns the jail's resource usage as rctl counts it (memoryuse: resident bytes, maxproc:
// processes, openfiles, pcpu: percent of one core) and the limits Create set.
func (s *Sandbox) Usage(ctx context.Context) (runtime.Usage, error) {
	out, err := s.rt.run(ctx, rctlUsageCmd(s.n.Jail), nil)
	if err != nil {
		return runtime.Usage{}, fmt.Errorf("usage of %s: %w", s.id, err)
	}
	u, err := parseRctlUsage(out)
	if err != nil {
		return runtime.Usage{}, fmt.Errorf("usage of %s: %w", s.id, err)
	}
	return usageFrom(u, s.lim), nil
}

func exitStderr(err error) string {
	var ee *executor.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return ""
}
