// Package runtime is the seam between the worker and the things that actually run sandboxes. A Runtime
// creates Sandboxes; a Sandbox maps sandbox paths to host paths, builds processes that run inside it and
// is destroyed with everything in it. The shape follows nomad's driver plugin (plugins/drivers): one
// interface, one folder per implementation, each method documenting its contract, optional capabilities
// (pause, snapshots, recovery) as separate interfaces found by type assertion once they exist.
//
// Implementations:
//   - process (runtime/process): a directory and a process group per sandbox on any unix; no isolation.
//   - jail, bhyve (FreeBSD): later.
package runtime

import (
	"context"
	"errors"
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
}

// Runtime creates and cleans up sandboxes on this host. Implementations are safe for concurrent use.
type Runtime interface {
	// Name is the runtime's name as configured and advertised in heartbeats ("process", "jail", ...).
	Name() string

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
	// resolved).
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

// OwnerNamer is implemented by sandboxes that name the owners of their files their own way (their own
// user database, or no users at all). An empty name means "as the host names it".
type OwnerNamer interface {
	OwnerNames(uid, gid uint32) (owner, group string)
}

// ErrPathEscape is returned by HostPath for paths that leave the sandbox.
var ErrPathEscape = errors.New("path escapes the sandbox")

// ErrExists is returned by Create when the sandbox already exists on this host.
var ErrExists = errors.New("sandbox already exists")

// ErrDestroyed is returned by Command and Prepare after Destroy.
var ErrDestroyed = errors.New("sandbox destroyed")

// SandboxHome is the home directory of the sandbox user, the default working directory.
const SandboxHome = "/home/user"

// DefaultUser is the sandbox user that processes and file operations run as unless they name another.
const DefaultUser = "user"
