package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/kernel"
	"fleetbox.dev/worker/internal/logkey"
)

// kernelStartTimeout bounds the start of one kernel process.
const kernelStartTimeout = 30 * time.Second

// errContextClosed is returned for a context deleted while a caller waited for it.
var errContextClosed = errors.New("context closed")

// codeContext is one code-interpreter context: a kernel process that keeps its state between executions.
// Its kernel starts in the background; callers wait for it in get. A kernel that died (the code called
// os._exit, or it was killed) is replaced by a fresh one on the next get, as Jupyter's restarter does.
type codeContext struct {
	info  schema.CodeContext
	start func(ctx context.Context) (*kernel.Kernel, error)
	log   *slog.Logger
	// base bounds kernel starts: the sandbox's life.
	base context.Context

	mu     sync.Mutex
	k      *kernel.Kernel
	err    error         // error of the last start
	ready  chan struct{} // closed when the current start attempt has finished
	closed bool
}

// newContext makes a code context in sb whose kernel runs in the sandbox path cwd, and starts the kernel.
// An eager context starts its kernel now, in the background; a lazy one at its first use.
func (w *Worker) newContext(sb *sandbox, language, cwd string, eager bool) (*codeContext, error) {
	host, err := sb.rt.HostPath(cwd)
	if err != nil {
		return nil, schema.Errorf(http.StatusBadRequest, "cwd %s: %v", cwd, err)
	}
	if fi, err := os.Stat(host); err != nil || !fi.IsDir() {
		return nil, schema.Errorf(http.StatusBadRequest, "cwd %s does not exist in the sandbox or is not a directory", cwd)
	}
	dir, err := sb.procPath(cwd)
	if err != nil {
		return nil, schema.Errorf(http.StatusBadRequest, "cwd %s: %v", cwd, err)
	}
	id := newContextID()
	log := sb.log.With(logkey.ContextID, id)
	cfg := kernel.Config{
		Python:            w.cfg.Python,
		ModuleDir:         w.cfg.KernelModuleDir,
		Zygote:            w.zygote,
		Dir:               dir,
		Env:               sb.rt.Env(),
		KeepaliveInterval: w.cfg.KeepaliveInterval,
		Prepare:           sb.rt.Prepare,
		Logger:            log,
	}
	c := &codeContext{
		info: schema.CodeContext{ID: id, Language: language, Cwd: cwd},
		log:  log,
		base: sb.ctx,
		start: func(ctx context.Context) (*kernel.Kernel, error) {
			// Not while the sandbox pauses or is paused: the new process would escape the pause.
			sb.startMu.RLock()
			defer sb.startMu.RUnlock()
			if sb.isPaused() {
				return nil, sandboxPaused(sb.id)
			}
			ctx, cancel := context.WithTimeout(ctx, kernelStartTimeout)
			defer cancel()
			return kernel.Start(ctx, cfg)
		},
	}
	if eager {
		c.mu.Lock()
		c.startLocked()
		c.mu.Unlock()
	}
	return c, nil
}

// newContextID returns a random id formatted like the kernel UUIDs E2B's server returns.
func newContextID() string {
	h := schema.NewToken(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// startLocked begins a kernel start in the background. c.mu is held.
func (c *codeContext) startLocked() {
	ready := make(chan struct{})
	c.ready, c.k, c.err = ready, nil, nil
	go func() {
		began := time.Now()
		k, err := c.start(c.base)
		c.mu.Lock()
		defer c.mu.Unlock()
		defer close(ready)
		if c.closed || c.ready != ready {
			if k != nil {
				go k.Close()
			}
			return
		}
		if err != nil {
			if c.base.Err() == nil { // not just the sandbox being killed while its kernel started
				c.log.Error("kernel start failed", logkey.Error, err)
			}
			c.err = fmt.Errorf("start kernel: %w", err)
			return
		}
		c.log.Debug("kernel started", "duration", time.Since(began), "pid", k.Pid())
		c.k = k
	}()
}

// get returns the context's kernel, waiting for its start, and restarts a dead kernel (or one whose start
// failed: the error is returned once, the next get tries again).
func (c *codeContext) get(ctx context.Context) (*kernel.Kernel, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, errContextClosed
		}
		if c.ready == nil { // a lazy context's first use
			c.startLocked()
		}
		ready := c.ready
		c.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, errContextClosed
		}
		if c.ready != ready { // restarted meanwhile: wait for the new kernel
			c.mu.Unlock()
			continue
		}
		if c.err != nil {
			err := c.err
			c.startLocked()
			c.mu.Unlock()
			return nil, err
		}
		k := c.k
		select {
		case <-k.Done():
			c.log.Warn("kernel died; starting a fresh one")
			c.startLocked()
			c.mu.Unlock()
			continue
		default:
		}
		c.mu.Unlock()
		return k, nil
	}
}

// restart replaces the kernel by a fresh one (state and execution count reset) and waits for it.
// Executions running in the old kernel end with a KernelDied error.
func (c *codeContext) restart(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errContextClosed
	}
	old := c.k
	c.startLocked()
	c.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	_, err := c.get(ctx)
	return err
}

// close kills the kernel; the context cannot be used any more.
func (c *codeContext) close() {
	c.mu.Lock()
	c.closed = true
	k := c.k
	c.k = nil
	c.mu.Unlock()
	if k != nil {
		_ = k.Close()
	}
}

// context returns a context of sb by id, or the 404 E2B's server gives.
func (sb *sandbox) context(id string) (*codeContext, error) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if id == "" {
		id = sb.defaultCtx
	}
	c := sb.contexts[id]
	if c == nil {
		return nil, contextNotFound(id)
	}
	return c, nil
}

func contextNotFound(id string) error {
	return schema.Errorf(http.StatusNotFound, "Context %s not found", id)
}
