package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/fsops"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime"
)

// sandbox is a sandbox this worker runs: its runtime sandbox, its code contexts, its op subscription and
// its end-of-life timer.
type sandbox struct {
	id  string
	rt  runtime.Sandbox
	log *slog.Logger
	// envd is the sandbox's envd surface: processes, files, watches, uploads.
	envd *envd
	// ctx ends when the sandbox is killed; executions run under it.
	ctx    context.Context
	cancel context.CancelFunc
	killed chan struct{} // closed when a kill has finished

	// onTimeout is the record's OnTimeout: "pause" makes the end of its time pause it instead of killing.
	onTimeout string
	// ownRoot: the runtime's processes see the sandbox's root as "/" (runtime.Capabilities.OwnRoot).
	ownRoot bool
	// lifeMu serialises pause, resume and snapshot.
	lifeMu sync.Mutex
	// startMu is held for reading while a process (a command, a kernel) starts in the sandbox and for
	// writing while it pauses, so that no process starts unseen by the pause.
	startMu sync.RWMutex

	mu         sync.Mutex
	sub        *nats.Subscription
	killing    bool
	paused     bool
	metrics    []schema.Metric // the latest usage samples, oldest first (op_metrics.go)
	contexts   map[string]*codeContext
	defaultCtx string                        // id of the default python context
	executions map[string]context.CancelFunc // running executions by stream id (OpInterrupt)
	endAt      time.Time
	timer      *time.Timer
}

func (sb *sandbox) isKilling() bool {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.killing
}

// procPath is sandbox path p as the sandbox's processes name it: p itself where the sandbox has its own
// root, else its host path.
func (sb *sandbox) procPath(p string) (string, error) {
	host, err := sb.rt.HostPath(p) // also refuses paths that leave the sandbox
	if err != nil || !sb.ownRoot {
		return host, err
	}
	return path.Clean(p), nil
}

// fileOwner is who files made for a request's user belong to: nil (the worker's user) unless the
// runtime's users are its own.
func (sb *sandbox) fileOwner(user string) *fsops.Owner {
	fo, ok := sb.rt.(runtime.FileOwner)
	if !ok {
		return nil
	}
	uid, gid, ok := fo.FileOwner(user)
	if !ok {
		return nil
	}
	return &fsops.Owner{UID: uid, GID: gid}
}

func (sb *sandbox) isPaused() bool {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.paused
}

// start is the claim loop's StartFunc: it creates the runtime sandbox and its default code context,
// serves its operations, and moves the record starting → running.
func (w *Worker) start(ctx context.Context, rec schema.Record, rev uint64) error {
	w.mu.Lock()
	if w.draining {
		w.mu.Unlock()
		return errors.New("worker is draining")
	}
	if _, ok := w.sandboxes[rec.ID]; ok {
		w.mu.Unlock()
		return fmt.Errorf("sandbox %s already runs here", rec.ID)
	}
	w.mu.Unlock()

	spec, err := w.specOf(rec)
	if err != nil {
		return fmt.Errorf("start %s: %w", rec.ID, err)
	}
	rs, err := w.rt.Create(ctx, spec)
	if err != nil {
		return fmt.Errorf("start %s: %w", rec.ID, err)
	}
	sb, abort, err := w.serve(ctx, rec, rs, w.cfg.KernelStart)
	if err != nil {
		return err
	}

	next, err := rec.Transition(schema.StateRunning, "")
	if err != nil {
		return w.abortStart(sb, abort, err)
	}
	next.StartedAt = time.Now().UTC()
	if _, err := w.bus.CompareAndSet(ctx, rec, rev, next); err != nil {
		// Most likely the record was killed while the sandbox started.
		return w.abortStart(sb, abort, fmt.Errorf("mark running: %w", err))
	}
	w.armTimer(sb, next.EndAt)
	sb.log.Info("sandbox running")
	return nil
}

// specOf is what the runtime needs to create (or adopt) rec's sandbox. An egress policy the runtime
// cannot enforce is refused rather than ignored.
func (w *Worker) specOf(rec schema.Record) (runtime.Spec, error) {
	spec := runtime.Spec{
		ID: rec.ID, TemplateID: rec.TemplateID, EnvVars: rec.EnvVars, CPUCount: rec.CPUCount, MemoryMB: rec.MemoryMB,
		Snapshot: rec.Snapshot,
	}
	if rec.Egress != nil {
		if !w.rt.Capabilities().Egress {
			if rec.Egress.Restricts() {
				return spec, errNoEgress(w.rt.Name())
			}
			return spec, nil // everything allowed: nothing to enforce
		}
		e, err := runtimeEgress(*rec.Egress)
		if err != nil {
			return spec, err
		}
		spec.Egress = &e
	}
	return spec, nil
}

// serve builds the worker's side of runtime sandbox rs for record rec (its envd surface and default code
// context, whose kernel starts per ks), registers it and serves its operations. On error it has undone
// everything, rs included. The returned abort undoes a served sandbox (see abortStart).
func (w *Worker) serve(ctx context.Context, rec schema.Record, rs runtime.Sandbox, ks KernelStart) (*sandbox, func(error) error, error) {
	sctx, cancel := context.WithCancel(context.Background())
	sb := &sandbox{
		id: rec.ID, rt: rs, log: w.log.With(logkey.SandboxID, rec.ID), ctx: sctx, cancel: cancel, onTimeout: rec.OnTimeout,
		ownRoot: w.rt.Capabilities().OwnRoot, paused: rec.State == schema.StatePaused,
		killed: make(chan struct{}), contexts: map[string]*codeContext{}, executions: map[string]context.CancelFunc{},
	}
	abort := func(err error) error {
		cancel()
		if sb.envd != nil {
			if cerr := sb.envd.close(context.WithoutCancel(ctx)); cerr != nil {
				sb.log.Error("close envd after failed start", logkey.Error, cerr)
			}
		}
		if derr := rs.Destroy(context.WithoutCancel(ctx)); derr != nil {
			sb.log.Error("destroy after failed start", logkey.Error, derr)
		}
		sb.closeContexts()
		return fmt.Errorf("start %s: %w", rec.ID, err)
	}
	var err error
	if sb.envd, err = newEnvd(rs, rec.EnvVars, w.cfg.UploadCommitTimeout, sb.log); err != nil {
		return nil, nil, abort(err)
	}
	def, err := w.newContext(sb, schema.LanguagePython, schema.DefaultContextCwd, ks != KernelLazy)
	if err != nil {
		return nil, nil, abort(err)
	}
	sb.mu.Lock()
	sb.contexts[def.info.ID] = def
	sb.defaultCtx = def.info.ID
	sb.mu.Unlock()
	if ks == KernelReady {
		if _, err := def.get(ctx); err != nil {
			return nil, nil, abort(err)
		}
	}

	// Registered before the record says running, so the first operation finds it.
	w.mu.Lock()
	w.sandboxes[rec.ID] = sb
	w.mu.Unlock()
	sub, err := w.mux.Subscribe(w.bus.NC, rec.ID)
	if err != nil {
		w.unregister(rec.ID)
		return nil, nil, abort(err)
	}
	sb.mu.Lock()
	sb.sub = sub
	killing := sb.killing // a kill (drain) that came first did not see the subscription
	sb.mu.Unlock()
	if killing {
		_ = sub.Unsubscribe()
	}
	return sb, abort, nil
}

// abortStart undoes a start after the sandbox was registered and subscribed. If a kill got there first
// (the apiserver gave up on the create, or the worker drains), the kill owns the sandbox: it removes it,
// ends the record and frees the slot, and the start counts as done.
func (w *Worker) abortStart(sb *sandbox, abort func(error) error, err error) error {
	sb.mu.Lock()
	if sb.killing {
		sb.mu.Unlock()
		<-sb.killed
		sb.log.Info("sandbox killed while starting", "cause", err)
		return nil
	}
	sb.killing = true
	sub := sb.sub
	sb.mu.Unlock()
	defer close(sb.killed)
	if sub != nil {
		_ = sub.Unsubscribe()
	}
	w.unregister(sb.id)
	return abort(err)
}

func (w *Worker) unregister(id string) {
	w.mu.Lock()
	delete(w.sandboxes, id)
	w.mu.Unlock()
}

// closeContexts kills every code context of the sandbox.
func (sb *sandbox) closeContexts() {
	sb.mu.Lock()
	cs := make([]*codeContext, 0, len(sb.contexts))
	for _, c := range sb.contexts {
		cs = append(cs, c)
	}
	sb.contexts = map[string]*codeContext{}
	sb.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
}
