package jail

import (
	"context"
	"fmt"
	"io/fs"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime"
)

var _ runtime.Adopter = (*Runtime)(nil)

// Adopt takes over a jail an earlier run of the worker left: the jail must run on the sandbox's root (its
// clone or copy). Its processes keep running; its address is reserved again; its egress policy is the one
// still loaded in its anchor (the runtime assumes the configured allow list, which SetEgress replaces).
func (r *Runtime) Adopt(ctx context.Context, spec runtime.Spec) (runtime.Sandbox, error) {
	if !schema.ValidSandboxID(spec.ID) {
		return nil, fmt.Errorf("adopt sandbox: invalid id %q", spec.ID)
	}
	all, err := r.inventory(ctx)
	if err != nil {
		return nil, fmt.Errorf("adopt %s: %w", spec.ID, err)
	}
	n := r.names(spec.ID)
	f := all[spec.ID]
	switch {
	case f == nil || !f.Jail:
		return nil, fmt.Errorf("adopt %s: no jail %s: %w", spec.ID, n.Jail, fs.ErrNotExist)
	case !f.Root:
		return nil, fmt.Errorf("adopt %s: jail %s has no root file system: %w", spec.ID, n.Jail, fs.ErrNotExist)
	case f.entry.Path != n.Root:
		return nil, fmt.Errorf("adopt %s: jail %s runs on %s, not %s", spec.ID, n.Jail, f.entry.Path, n.Root)
	case r.cfg.VNETBridge != "" && f.Epair == "":
		return nil, fmt.Errorf("adopt %s: jail %s has no epair", spec.ID, n.Jail)
	}
	if !f.Rules || !f.Anchor {
		r.log.Warn("adopted jail misses its limits or egress anchor", logkey.SandboxID, spec.ID, "rctl", f.Rules, "anchor", f.Anchor)
	}
	addr := f.entry.Addr
	if addr.IsValid() {
		r.mu.Lock()
		if other, used := r.addrs[addr]; used && other != spec.ID {
			r.mu.Unlock()
			return nil, fmt.Errorf("adopt %s: address %s is taken by %s", spec.ID, addr, other)
		}
		r.addrs[addr] = spec.ID
		r.mu.Unlock()
	}
	s := &Sandbox{
		rt:     r,
		n:      n,
		id:     spec.ID,
		root:   n.Root,
		addr:   addr,
		epair:  f.Epair,
		jid:    f.entry.JID,
		egress: r.egressFor(spec),
		env:    sandboxEnv(spec.ID, spec.EnvVars),
		log:    r.log.With(logkey.SandboxID, spec.ID),
	}
	r.log.Info("adopted jail", logkey.SandboxID, spec.ID, "jid", s.jid, "addr", addr)
	return s, nil
}
