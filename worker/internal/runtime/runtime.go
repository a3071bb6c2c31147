// Package runtime is the seam between the worker and the things that actually run sandboxes. A Runtime
// creates Sandboxes; a Sandbox maps sandbox paths to host paths, builds processes that run inside it and
// is destroyed with everything in it. The shape follows nomad's driver plugin (plugins/drivers): one
// interface, one folder per implementation, each method documenting its contract, optional capabilities
// (pause, snapshots, recovery) as separate interfaces found by type assertion once they exist.
//
// Implementations:
//   - process (runtime/process): a directory and a process group per sandbox on any unix; no isolation.
//   - jail (runtime/jail, FreeBSD): a jail on a ZFS clone (or copy) of a template, rctl limits, pf egress.
//   - bhyve (runtime/bhyve, FreeBSD): a VM on a zvol clone; its processes run through the guest agent
//     (package agent), its files are reached through the home it shares with the host (HostPath refuses the
//     rest).
package runtime

import (
	"context"
	"errors"
	"net/netip"
	"os/exec"
)

// Spec is what a runtime needs to create one sandbox.
type Spec struct {
	// ID is the sandbox id (schema.ValidSandboxID); a runtime may use it in paths and names.
	ID         string
	TemplateID string
	// EnvVars are the sandbox-global environment variables: every process started in the sandbox sees them.
	EnvVars  map[string]string
	CPUCount int
	MemoryMB int
	// Egress, if set, is the sandbox's egress policy; nil leaves the runtime's default. A runtime without
	// Capabilities.Egress refuses a non-nil one (it cannot enforce it).
	Egress *Egress
	// Snapshot, if set, names a snapshot made on this host by Snapshotter.Snapshot: the sandbox starts
	// with the snapshot's file system instead of the template's. An unknown snapshot fails Create with an
	// error matching fs.ErrNotExist, an invalid name with an error. A runtime without snapshots refuses
	// it (ErrNotSupported).
	Snapshot string
}

// Capabilities describe what a runtime's sandboxes are, for the code that drives them.
type Capabilities struct {
	// OwnRoot: processes of a sandbox see the sandbox's root as "/" (a jail, a VM). Their executables
	// and working directories are sandbox paths, and host paths (the worker's Python, its kernel module)
	// mean nothing to them. Without it they share the host's file system (the process runtime).
	OwnRoot bool
	// Isolated: the sandbox is a security boundary (its processes cannot reach the host's or other
	// sandboxes' processes and files).
	Isolated bool
	// Egress: the runtime enforces egress policies (Spec.Egress, EgressSetter).
	Egress bool
}

// Egress is a sandbox's outbound network policy (IPv4). With AllowAll every destination is reachable but
// Deny; without it only Allow is. Allow wins over Deny.
type Egress struct {
	AllowAll bool
	Allow    []netip.Prefix
	Deny     []netip.Prefix
}

// EgressSetter is implemented by sandboxes whose egress policy can change while they run.
type EgressSetter interface {
	SetEgress(ctx context.Context, e Egress) error
}

// Runtime creates and cleans up sandboxes on this host. Implementations are safe for concurrent use.
type Runtime interface {
	// Name is the runtime's name as configured and advertised in heartbeats ("process", "jail", ...).
	Name() string

	// Capabilities says what the runtime's sandboxes are.
	Capabilities() Capabilities

	// Create makes a new, empty sandbox that is ready for Command when Create returns. It fails if a
	// sandbox with the same id exists on this host. On error nothing of the sandbox is left behind.
	Create(ctx context.Context, spec Spec) (Sandbox, error)

	// Cleanup destroys every sandbox of this runtime left on the host (by an earlier run of the worker that
	// crashed or was killed) for which keep returns false: it kills their processes and removes their files.
	// It must not be called while sandboxes are being created. It continues past individual failures and
	// returns them joined.
	Cleanup(ctx context.Context, keep func(id string) bool) error
}

// Sandbox is one sandbox created by a Runtime. Its methods are safe for concurrent use.
type Sandbox interface {
	// ID returns Spec.ID.
	ID() string

	// HostPath maps a path inside the sandbox (absolute, like /home/user/x; a relative path is taken
	// relative to /home/user, as E2B does) to the host path a worker-side process opens. It refuses,
	// with an error matching ErrPathEscape, paths that would leave the sandbox's root: ".." above the
	// root, or a symlink that resolves outside it. The path need not exist (its existing prefix is
	// resolved). A runtime whose host reaches only part of a sandbox (a VM shares /home/user and nothing
	// else) refuses the rest with an error matching ErrPathEscape too.
	HostPath(sandboxPath string) (string, error)

	// Command returns a process that runs inside the sandbox, unstarted: argv[0] is looked up on the
	// sandbox's PATH, cwd is a sandbox path ("" means /home/user), env is added to the sandbox's
	// environment (later entries win). The caller starts and waits for it. Cancelling ctx kills it.
	Command(ctx context.Context, argv []string, cwd string, env map[string]string) (*exec.Cmd, error)

	// Prepare makes an already built *exec.Cmd run inside the sandbox: it sets its process attributes
	// (process group, credentials, namespaces as the runtime uses them), and its environment and working
	// directory when the caller left them empty. Command calls it; code that builds its own *exec.Cmd
	// (the code kernel driver) calls it before Start.
	Prepare(cmd *exec.Cmd) error

	// Env returns the sandbox's environment as KEY=VALUE pairs: the runtime's defaults (HOME, PATH, ...)
	// and Spec.EnvVars.
	Env() []string

	// Destroy kills every process of the sandbox and removes everything it owns on the host. After it
	// returns without error no process of the sandbox runs and its files are gone. It is idempotent and
	// safe to call concurrently with itself and with running processes.
	Destroy(ctx context.Context) error
}

// Adopter is implemented by runtimes that can take over a sandbox an earlier run of the worker left on
// the host (after a crash or an upgrade) instead of removing it.
type Adopter interface {
	// Adopt returns the sandbox spec.ID that is on the host, as Create would have returned it, with its
	// files. Whether its processes survive is the runtime's to say (a jail's do; the process runtime's are
	// killed, since they belonged to the dead worker's session). It fails if the sandbox is not there or not
	// whole; the caller then removes it with Cleanup (which must keep adopted sandboxes).
	Adopt(ctx context.Context, spec Spec) (Sandbox, error)
}

// Pauser is implemented by sandboxes that can be paused in place. Destroy works on a paused sandbox;
// Pause and Resume after Destroy fail with ErrDestroyed.
type Pauser interface {
	// Pause stops every process of the sandbox (a process that forks meanwhile is stopped too); they keep
	// their memory and open files. Pausing a paused sandbox succeeds.
	Pause(ctx context.Context) error
	// Resume continues every process Pause stopped. Resuming a running sandbox succeeds.
	Resume(ctx context.Context) error
}

// Snapshotter is implemented by sandboxes whose file system can be captured.
type Snapshotter interface {
	// Snapshot captures the sandbox's file system (not its processes' memory) as snapshot name (a
	// schema.ValidSandboxID), from which Create makes new sandboxes (Spec.Snapshot). The snapshot is
	// independent of the sandbox: it outlives it. It fails with ErrExists if name is taken.
	Snapshot(ctx context.Context, name string) error
}

// SnapshotStore is implemented by runtimes whose sandboxes are Snapshotters.
type SnapshotStore interface {
	// DeleteSnapshot removes snapshot name from the host; a missing one is not an error.
	DeleteSnapshot(ctx context.Context, name string) error
	// Snapshots lists the snapshots on this host.
	Snapshots(ctx context.Context) ([]string, error)
}

// Usage is what a sandbox uses now, as far as its runtime can tell (-1: unknown).
type Usage struct {
	MemoryBytes int64 `json:"memoryBytes"`
	Processes   int   `json:"processes"`
	OpenFiles   int   `json:"openFiles"`
	// CPUPercent is the recent CPU use in percent of one core.
	CPUPercent float64 `json:"cpuPercent"`
	// Limits in force: MemoryLimitBytes, MaxProcesses, MaxOpenFiles (0: none).
	MemoryLimitBytes int64 `json:"memoryLimitBytes"`
	MaxProcesses     int   `json:"maxProcesses"`
	MaxOpenFiles     int   `json:"maxOpenFiles"`
}

// UsageReporter is implemented by sandboxes that can report their resource usage.
type UsageReporter interface {
	Usage(ctx context.Context) (Usage, error)
}

// FileOwner is implemented by sandboxes whose users differ from the worker's: files the worker writes on
// a sandbox user's behalf (uploads, made directories) are given to that user.
type FileOwner interface {
	// FileOwner returns the host uid and gid that files of user (a sandbox user name, "" for the
	// default user) must belong to; ok is false for a user the sandbox does not know.
	FileOwner(user string) (uid, gid int, ok bool)
}

// OwnerNamer is implemented by sandboxes that name the owners of their files their own way (their own
// user database, or no users at all). An empty name means "as the host names it".
type OwnerNamer interface {
	OwnerNames(uid, gid uint32) (owner, group string)
}

// ErrPathEscape is returned by HostPath for paths that leave the sandbox.
var ErrPathEscape = errors.New("path escapes the sandbox")

// ErrExists is returned by Create when the sandbox already exists on this host.
var ErrExists = errors.New("sandbox already exists")

// ErrNotSupported is returned (wrapped) by operations a runtime does not have, such as a Spec.Snapshot on
// a runtime without snapshots.
var ErrNotSupported = errors.New("not supported by this runtime")

// ErrDestroyed is returned by Command and Prepare after Destroy.
var ErrDestroyed = errors.New("sandbox destroyed")

// SandboxHome is the home directory of the sandbox user, the default working directory.
const SandboxHome = "/home/user"

// DefaultUser is the sandbox user that processes and file operations run as unless they name another.
const DefaultUser = "user"
