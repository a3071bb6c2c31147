// Package worker is the node agent: it claims create commands while it has capacity (package claim),
// starts sandboxes on a runtime (package runtime), runs their code contexts (package kernel), serves each
// sandbox's operations on the bus (op_*.go, one file per group), among them E2B's envd surface
// (envd.go: processes, files, watches and uploads through packages procs, fsops, watch and upload),
// enforces their end time (ttl.go), announces itself with heartbeats (heartbeat.go), cleans up after
// an earlier run on start-up (recover.go) and drains on stop.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/claim"
	"fleetbox.dev/worker/internal/hostmem"
	"fleetbox.dev/worker/internal/kernel"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/runtime"
)

// Config configures a Worker.
type Config struct {
	// ID names the worker in records (Record.Worker) and heartbeats; stable across restarts so that a
	// restarted worker recognises its own leftovers.
	ID      string
	Bus     *bus.Bus
	Runtime runtime.Runtime
	// Python is the interpreter of code contexts, as sandbox processes see it.
	Python string
	// Capacity is the most sandboxes this worker holds at once (starting or running).
	Capacity int
	// MinFreeMemoryMB keeps this much of the host's memory free: below it the worker stops claiming
	// creates (they go to workers with room) until memory is available again. 0 disables the check.
	MinFreeMemoryMB int
	Host            string
	Version         string
	// KernelStart says when the default code context's kernel starts: KernelLazy (the default) at the
	// first execution, so sandboxes used only for commands and files never pay for an interpreter
	// (a start costs ~35 ms of CPU and ~7 MiB); KernelBackground right after the sandbox is running,
	// overlapping the client's round trip (a few ms better time to interactive, but creates compete for
	// CPU with interpreters under load); KernelReady before the sandbox is reported running.
	KernelStart KernelStart
	// KernelModuleDir, if set, is where the kernel is written as a module (compiled once) for every
	// kernel start to import, saving ~3 ms per start; it must be visible to the sandboxes' interpreters.
	KernelModuleDir string
	// KernelZygote forks kernels from one pre-imported interpreter (a fork server) when the runtime
	// allows it: a kernel start then costs a fork (~7 ms) instead of an interpreter start (~30-50 ms).
	// It needs KernelModuleDir.
	KernelZygote bool
	// KeepaliveInterval is the idle time after which executions emit keepalive lines (default 5 s).
	KeepaliveInterval time.Duration
	// HeartbeatInterval defaults to a third of the bus's WorkerTTL.
	HeartbeatInterval time.Duration
	// FetchWait is how long one pull for a create command waits (default 2 s); stopping waits for it.
	FetchWait time.Duration
	// OpTimeout bounds the handling of one operation request (default 60 s).
	OpTimeout time.Duration
	// PausedRetention is how long a paused sandbox is kept when its pause names no end (default 30 days,
	// as E2B keeps paused sandboxes); it holds its slot and memory on this worker meanwhile.
	PausedRetention time.Duration
	// UploadCommitTimeout is how long a received file upload waits for its commit before it is
	// discarded (default 2 min).
	UploadCommitTimeout time.Duration
	Logger              *slog.Logger
}

// drainTimeout bounds the drain on stop.
const drainTimeout = 10 * time.Second

// Worker runs sandboxes for the fleet.
type Worker struct {
	cfg       Config
	zygote    *kernel.Zygote // nil: kernels start as fresh interpreters
	id        string
	bus       *bus.Bus
	rt        runtime.Runtime
	log       *slog.Logger
	slots     *claim.Slots
	mux       *bus.Mux // operations of sandboxes (schema.SubjectOp)
	workerMux *bus.Mux // operations addressed to the worker (schema.SubjectWorkerOp)
	loop      *claim.Loop
	startedAt time.Time

	mu        sync.Mutex
	sandboxes map[string]*sandbox
	draining  bool
}

// New checks cfg and builds a Worker; Run starts it.
func New(cfg Config) (*Worker, error) {
	switch {
	case cfg.ID == "" || !validKey(cfg.ID):
		return nil, fmt.Errorf("worker: invalid id %q (letters, digits, '-', '_')", cfg.ID)
	case cfg.Bus == nil:
		return nil, errors.New("worker: no bus")
	case cfg.Runtime == nil:
		return nil, errors.New("worker: no runtime")
	case cfg.Python == "":
		return nil, errors.New("worker: no python interpreter")
	}
	// A missing interpreter would only show at the first execution: refuse to start instead.
	// With sandboxes of their own root, the interpreter is a path inside them: the template has it.
	if !cfg.Runtime.Capabilities().OwnRoot {
		if _, err := exec.LookPath(cfg.Python); err != nil {
			return nil, fmt.Errorf("worker: python interpreter: %w", err)
		}
	} else {
		// Host files mean nothing inside: kernels start from source, as fresh interpreters.
		cfg.KernelModuleDir, cfg.KernelZygote = "", false
	}
	if cfg.PausedRetention <= 0 {
		cfg.PausedRetention = 30 * 24 * time.Hour
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = 64
	}
	if cfg.Host == "" {
		cfg.Host, _ = os.Hostname()
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = max(cfg.Bus.Config.WorkerTTL/3, 100*time.Millisecond)
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = time.Minute
	}
	if cfg.UploadCommitTimeout <= 0 {
		cfg.UploadCommitTimeout = defaultUploadCommitTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With(logkey.WorkerID, cfg.ID)
	w := &Worker{
		cfg:       cfg,
		id:        cfg.ID,
		bus:       cfg.Bus,
		rt:        cfg.Runtime,
		log:       log,
		slots:     claim.NewSlots(cfg.Capacity),
		mux:       bus.NewMux(cfg.OpTimeout, log),
		workerMux: bus.NewMux(cfg.OpTimeout, log),
		sandboxes: map[string]*sandbox{},
	}
	w.register()
	return w, nil
}

// ID returns the worker's id.
func (w *Worker) ID() string { return w.id }

// Run cleans up after an earlier run, then claims and serves sandboxes until ctx ends. Then it drains:
// it stops claiming, kills its sandboxes (records killed, reason schema.ReasonWorkerDrained), withdraws
// its heartbeat and returns.
func (w *Worker) Run(ctx context.Context) error {
	w.startedAt = time.Now().UTC()
	if dir := w.cfg.KernelModuleDir; dir != "" {
		if err := kernel.WriteModule(ctx, w.cfg.Python, dir); err != nil {
			w.log.Warn("kernel module not written; kernels start from source", logkey.Error, err)
			w.cfg.KernelModuleDir = ""
		}
	}
	if w.cfg.KernelZygote && w.cfg.KernelModuleDir != "" {
		z, err := kernel.StartZygote(ctx, w.cfg.Python, w.cfg.KernelModuleDir, w.log)
		if err != nil {
			w.log.Warn("kernel fork server not started; kernels start as fresh interpreters", logkey.Error, err)
		} else {
			w.zygote = z
			defer z.Close()
		}
	}
	// Beat first: recovery can take a while, and a worker without a heartbeat has its sandboxes (the ones
	// it is about to adopt) declared lost.
	if err := w.heartbeat(ctx); err != nil {
		w.log.Warn("first heartbeat failed; will retry", logkey.Error, err)
	}
	if err := w.recoverLeftovers(ctx); err != nil {
		return fmt.Errorf("worker %s: recover: %w", w.id, err)
	}
	hbCtx, stopHeartbeat := context.WithCancel(context.Background())
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		w.heartbeatLoop(hbCtx)
	}()
	loop := claim.New(claim.Config{
		Bus: w.bus, WorkerID: w.id, Slots: w.slots, Start: w.start, FetchWait: w.cfg.FetchWait, Logger: w.log,
		Admit: w.admit, Accept: w.accepts,
	})
	w.mu.Lock()
	w.loop = loop
	w.mu.Unlock()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		loop.Run(ctx)
	}()
	w.reconcileSnapshots(ctx)
	workerSub, err := w.workerMux.SubscribeWorker(w.bus.NC, w.id)
	if err != nil {
		w.log.Error("serve worker operations (placed creates, snapshot deletes)", logkey.Error, err)
	}
	w.log.Info("worker running", "capacity", w.cfg.Capacity, "runtime", w.rt.Name())

	<-ctx.Done()
	w.log.Info("worker draining")
	if workerSub != nil {
		_ = workerSub.Unsubscribe()
	}
	w.mu.Lock()
	w.draining = true
	w.mu.Unlock()
	// Bounded so that a worker told to stop while NATS is down still exits: its processes are gone
	// first; records it could not end are ended by its next start or by the apiserver's reaper.
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	_ = w.heartbeat(dctx)
	// Kill what runs while the claim loop finishes its last pull, then what its last claims started.
	w.killAll(dctx, schema.ReasonWorkerDrained)
	<-loopDone
	w.killAll(dctx, schema.ReasonWorkerDrained)
	stopHeartbeat()
	<-hbDone
	if err := w.bus.Workers.Delete(dctx, w.id); err != nil {
		w.log.Warn("withdraw heartbeat", logkey.Error, err)
	}
	w.log.Info("worker stopped")
	return nil
}

// accepts tells the claim loop whether this worker can start rec's sandbox: a network policy that blocks
// anything needs a runtime that enforces it.
func (w *Worker) accepts(rec schema.Record) bool {
	return rec.Egress == nil || !rec.Egress.Restricts() || w.rt.Capabilities().Egress
}

// admit tells the claim loop whether the host has room for one more sandbox beyond the free slot.
func (w *Worker) admit() error {
	if w.cfg.MinFreeMemoryMB <= 0 {
		return nil
	}
	mb, err := hostmem.AvailableMB()
	if errors.Is(err, hostmem.ErrUnknown) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read available memory: %w", err)
	}
	if mb < w.cfg.MinFreeMemoryMB {
		return fmt.Errorf("%d MiB of memory available, below the %d MiB kept free", mb, w.cfg.MinFreeMemoryMB)
	}
	return nil
}

// killAll kills every sandbox of the worker at once.
func (w *Worker) killAll(ctx context.Context, reason string) {
	w.mu.Lock()
	ids := make([]string, 0, len(w.sandboxes))
	for id := range w.sandboxes {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.kill(ctx, id, reason); err != nil && !errors.Is(err, schema.ErrNotFound) {
				w.log.Error("kill sandbox", logkey.SandboxID, id, logkey.Error, err)
			}
		}()
	}
	wg.Wait()
}

// lookup returns a live sandbox of this worker, or a 404.
// lookup returns a sandbox for a data-plane operation (code, processes, files): 409 while it is paused.
func (w *Worker) lookup(id string) (*sandbox, error) {
	sb, err := w.lookupAny(id)
	if err != nil {
		return nil, err
	}
	if sb.isPaused() {
		return nil, sandboxPaused(id)
	}
	return sb, nil
}

// lookupAny returns a sandbox for a lifecycle operation (timeout, pause, resume, snapshot), paused or not.
func (w *Worker) lookupAny(id string) (*sandbox, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sb := w.sandboxes[id]
	if sb == nil || sb.isKilling() {
		return nil, sandboxNotFound(id)
	}
	return sb, nil
}

func sandboxPaused(id string) error {
	return schema.Errorf(http.StatusConflict, "sandbox %s is paused: connect to it to resume it", id)
}

func sandboxNotFound(id string) error {
	return schema.Errorf(http.StatusNotFound, "sandbox %s not found", id)
}

// Running returns the number of sandboxes the worker holds.
func (w *Worker) Running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.sandboxes)
}

// validKey reports whether s is usable as a KV key and a log-friendly id.
func validKey(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// KernelStart is when a sandbox's default code context starts its kernel.
type KernelStart string

const (
	KernelLazy       KernelStart = "lazy"
	KernelBackground KernelStart = "background"
	KernelReady      KernelStart = "ready"
)

// ParseKernelStart reads a -kernel-start flag value.
func ParseKernelStart(s string) (KernelStart, error) {
	switch k := KernelStart(s); k {
	case KernelLazy, KernelBackground, KernelReady:
		return k, nil
	case "":
		return KernelLazy, nil
	}
	return "", fmt.Errorf("kernel start %q: want lazy, background or ready", s)
}
