package load

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"fleetbox.dev/loadtest/internal/client"
	"fleetbox.dev/schema/e2b"
)

// Config is one run.
type Config struct {
	Client         *client.Client
	Template       string
	SandboxTimeout int // seconds each sandbox may live (E2B "timeout"); a backstop if a kill is lost
	Code           string
	Command        string
	Shape          Shape
	Seed           uint64        // Poisson schedule
	RunID          string        // metadata loadtest=<RunID> on every sandbox
	MaxTime        time.Duration // hard bound of the whole run, cleanup excluded; 0 = 10 minutes
	// MaxPoissonInFlight bounds the open loop: an arrival finding this many lifecycles running is counted
	// as a failed create of kind "client overload" instead of piling up goroutines. 0 = 10,000.
	MaxPoissonInFlight int
	// OnHold runs in an idle shape while every sandbox is alive (after the list and the sampled run_code).
	// The bench reads the worker's memory there. Its result goes into Result.Hold.
	OnHold func(ctx context.Context, held []e2b.Sandbox) map[string]any
}

// Result is what a run measured beyond its recorded operations.
type Result struct {
	Wall       time.Duration  // from the run's start to the last operation's end
	Hold       map[string]any // idle shape: what was observed while the sandboxes were held
	NotKilled  []string       // sandboxes whose kill failed (the server's TTL will end them)
	Interrupts int            // lifecycles cut short by the end of the run's time budget or a signal
	Orphans    int            // sandboxes whose create timed out or was cut, found by listing and killed
}

// KindClientOverload marks Poisson arrivals dropped because too many lifecycles were in flight.
const KindClientOverload = "client overload"

type runner struct {
	cfg Config
	rec *Recorder

	mu        sync.Mutex
	notKilled []string
	cut       atomic.Int64
}

// Run drives cfg.Shape and records into rec. It returns when every started lifecycle has ended (sandboxes
// it created are killed even when ctx is canceled, each kill bounded by the client's timeout).
func Run(ctx context.Context, cfg Config, rec *Recorder) (*Result, error) {
	if err := cfg.Shape.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxTime <= 0 {
		cfg.MaxTime = 10 * time.Minute
	}
	if cfg.MaxPoissonInFlight <= 0 {
		cfg.MaxPoissonInFlight = 10000
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxTime)
	defer cancel()
	r := &runner{cfg: cfg, rec: rec}
	res := &Result{}
	s := cfg.Shape
	switch s.Kind {
	case Sequential:
		for i := 0; i < s.N && ctx.Err() == nil; i++ {
			r.lifecycle(ctx, s.Dwell)
		}
	case Burst:
		for round := 0; round < s.Rounds && ctx.Err() == nil; round++ {
			if round > 0 && !sleep(ctx, s.Pause) {
				break
			}
			r.burst(ctx, s.N, s.Dwell)
		}
	case Concurrent:
		r.concurrent(ctx, s)
	case Poisson:
		r.poisson(ctx, s)
	case Idle:
		res.Hold = r.idle(ctx, s)
	}
	res.Wall = wall(rec)
	res.Orphans = r.sweepOrphans(parent)
	res.NotKilled = r.notKilled
	res.Interrupts = int(r.cut.Load())
	switch {
	case parent.Err() != nil:
		return res, parent.Err()
	case ctx.Err() != nil:
		return res, fmt.Errorf("run stopped at its time budget of %v", cfg.MaxTime)
	}
	return res, nil
}

func wall(rec *Recorder) time.Duration {
	var w time.Duration
	for _, op := range rec.Ops() {
		w = max(w, op.End())
	}
	return w
}

func (r *runner) metadata() map[string]string {
	if r.cfg.RunID == "" {
		return nil
	}
	return map[string]string{"loadtest": r.cfg.RunID}
}

// lifecycle runs one create → run_code → command → dwell → kill.
func (r *runner) lifecycle(ctx context.Context, dwell time.Duration) {
	r.rec.inFlight.Add(1)
	defer r.rec.inFlight.Add(-1)
	t0 := time.Now()
	sb, err := r.create(ctx)
	if err != nil {
		r.rec.Add(PhaseLifecycle, t0, err)
		return
	}
	first := r.use(ctx, sb, t0)
	if dwell > 0 && first == nil && !sleep(ctx, dwell) {
		r.cut.Add(1)
	}
	if err := r.kill(ctx, sb); err != nil && first == nil {
		first = err
	}
	r.rec.Add(PhaseLifecycle, t0, first)
}

func (r *runner) create(ctx context.Context) (e2b.Sandbox, error) {
	t := time.Now()
	sb, err := r.cfg.Client.Create(ctx, client.CreateOptions{
		Template: r.cfg.Template, Timeout: r.cfg.SandboxTimeout, Metadata: r.metadata(),
	})
	r.rec.Add(PhaseCreate, t, err)
	return sb, err
}

// use runs the code and the command; t0 is when the create began (for TTI).
func (r *runner) use(ctx context.Context, sb e2b.Sandbox, t0 time.Time) error {
	var first error
	if r.cfg.Code != "" {
		t := time.Now()
		_, err := r.cfg.Client.RunCode(ctx, sb, r.cfg.Code)
		r.rec.Add(PhaseRunCode, t, err)
		r.rec.Add(PhaseTTI, t0, err)
		first = err
	}
	if r.cfg.Command != "" {
		t := time.Now()
		_, err := r.cfg.Client.RunCommand(ctx, sb, r.cfg.Command)
		r.rec.Add(PhaseCommand, t, err)
		if first == nil {
			first = err
		}
	}
	return first
}

// kill ends sb even if ctx is canceled: a stopped run must not leave sandboxes behind.
func (r *runner) kill(ctx context.Context, sb e2b.Sandbox) error {
	kctx := context.WithoutCancel(ctx)
	if r.cfg.Client.Timeout <= 0 {
		var cancel context.CancelFunc
		kctx, cancel = context.WithTimeout(kctx, 30*time.Second)
		defer cancel()
	}
	t := time.Now()
	err := r.cfg.Client.Kill(kctx, sb.SandboxID)
	r.rec.Add(PhaseKill, t, err)
	if err != nil {
		r.mu.Lock()
		r.notKilled = append(r.notKilled, sb.SandboxID)
		r.mu.Unlock()
	}
	return err
}

// sweepOrphans kills the sandboxes a canceled or timed-out create may have left: the server made them but
// the client never learned their ids. It lists the run's metadata tag and kills what is still there, which
// is only needed, and only done, when some create ended that way.
func (r *runner) sweepOrphans(ctx context.Context) int {
	if r.cfg.RunID == "" {
		return 0
	}
	cut := false
	for _, op := range r.rec.Ops() {
		if op.Phase == PhaseCreate && (op.Kind == client.KindCanceled || op.Kind == client.KindTimeout || op.Kind == client.KindConnection) {
			cut = true
			break
		}
	}
	if !cut {
		return 0
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	// Two passes: a create the client gave up on may still be finishing on the server during the first.
	n := 0
	for pass := 0; pass < 2; pass++ {
		if pass > 0 && !sleep(sctx, 500*time.Millisecond) {
			break
		}
		listed, err := r.cfg.Client.List(sctx, r.metadata(), 200)
		if err != nil {
			break
		}
		for _, l := range listed {
			if l.State == "running" || l.State == "paused" {
				if r.cfg.Client.Kill(sctx, l.SandboxID) == nil {
					n++
				}
			}
		}
	}
	return n
}

// burst starts n lifecycles behind one barrier so their creates leave together.
func (r *runner) burst(ctx context.Context, n int, dwell time.Duration) {
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Go(func() {
			<-gate
			r.lifecycle(ctx, dwell)
		})
	}
	close(gate)
	wg.Wait()
}

func (r *runner) concurrent(ctx context.Context, s Shape) {
	deadline := time.Now().Add(s.Duration)
	var started atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < s.Concurrency; i++ {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) && started.Add(1) <= int64(s.N) {
				r.lifecycle(ctx, s.Dwell)
			}
		})
	}
	wg.Wait()
}

func (r *runner) poisson(ctx context.Context, s Shape) {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, r.cfg.Seed^0x9e3779b97f4a7c15))
	sched := PoissonSchedule(s.Rate, s.Duration, s.N, rng)
	start := time.Now()
	var wg sync.WaitGroup
	for _, at := range sched {
		if !sleep(ctx, time.Until(start.Add(at))) {
			break
		}
		if r.rec.inFlight.Load() >= int64(r.cfg.MaxPoissonInFlight) {
			r.rec.AddDur(PhaseCreate, time.Now(), 0, &client.Error{Kind: KindClientOverload, Op: "create",
				Msg: fmt.Sprintf("%d lifecycles already in flight", r.cfg.MaxPoissonInFlight)})
			continue
		}
		wg.Go(func() { r.lifecycle(ctx, s.Dwell) })
	}
	wg.Wait()
}

// idle creates s.N sandboxes and keeps them, lists them, samples run_code, holds, then kills them all.
func (r *runner) idle(ctx context.Context, s Shape) map[string]any {
	var (
		mu   sync.Mutex
		held []e2b.Sandbox
		next atomic.Int64
		wg   sync.WaitGroup
	)
	tCreate := time.Now()
	for i := 0; i < s.Concurrency; i++ {
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= int64(s.N) {
				r.rec.inFlight.Add(1)
				sb, err := r.create(ctx)
				r.rec.inFlight.Add(-1)
				if err == nil {
					mu.Lock()
					held = append(held, sb)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	createWall := time.Since(tCreate)
	hold := map[string]any{
		"requested":         s.N,
		"created":           len(held),
		"create_wall_s":     createWall.Seconds(),
		"create_rate_per_s": float64(len(held)) / createWall.Seconds(),
	}

	// List: every sandbox of this run must be there and running.
	t := time.Now()
	listed, err := r.cfg.Client.List(ctx, r.metadata(), 1+s.N/100+10)
	r.rec.Add(PhaseList, t, err)
	ours := make(map[string]bool, len(held))
	for _, sb := range held {
		ours[sb.SandboxID] = true
	}
	running := 0
	for _, l := range listed {
		if ours[l.SandboxID] && l.State == "running" {
			running++
		}
	}
	hold["listed"] = len(listed)
	hold["listed_running"] = running
	hold["all_running"] = err == nil && running == len(held) && len(held) == s.N

	// A few run_codes spread over the batch, first and last included.
	if r.cfg.Code != "" && len(held) > 0 {
		k := min(s.Sample, len(held))
		for i := 0; i < k && ctx.Err() == nil; i++ {
			idx := 0
			if k > 1 {
				idx = i * (len(held) - 1) / (k - 1)
			}
			t := time.Now()
			_, err := r.cfg.Client.RunCode(ctx, held[idx], r.cfg.Code)
			r.rec.Add(PhaseRunCode, t, err)
		}
	}
	if r.cfg.OnHold != nil {
		for k, v := range r.cfg.OnHold(ctx, held) {
			hold[k] = v
		}
	}
	sleep(ctx, s.Dwell)

	tKill := time.Now()
	var ki atomic.Int64
	for i := 0; i < s.Concurrency; i++ {
		wg.Go(func() {
			for {
				j := int(ki.Add(1)) - 1
				if j >= len(held) {
					return
				}
				_ = r.kill(ctx, held[j])
			}
		})
	}
	wg.Wait()
	hold["kill_wall_s"] = time.Since(tKill).Seconds()
	return hold
}

// sleep waits d or until ctx ends; it reports whether the whole d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
