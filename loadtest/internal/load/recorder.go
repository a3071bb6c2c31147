package load

import (
	"sync"
	"sync/atomic"
	"time"

	"fleetbox.dev/loadtest/internal/client"
	"fleetbox.dev/loadtest/internal/stats"
)

// Phase names a timed step.
type Phase string

// The phases a run measures. TTI (time to interactive) runs from the start of the create request to the
// end of the first run_code's stream, so it includes the create's 201 and the first result.
const (
	PhaseCreate    Phase = "create"
	PhaseTTI       Phase = "tti"
	PhaseRunCode   Phase = "run_code"
	PhaseCommand   Phase = "command"
	PhaseKill      Phase = "kill"
	PhaseLifecycle Phase = "lifecycle"
	PhaseList      Phase = "list"
)

// Phases is the order in which reports show phases.
var Phases = []Phase{PhaseCreate, PhaseTTI, PhaseRunCode, PhaseCommand, PhaseKill, PhaseLifecycle, PhaseList}

// Op is one recorded operation.
type Op struct {
	Phase Phase
	stats.Sample
	Kind string // error kind; "" when OK
	Err  string
}

// Recorder collects operations from concurrent lifecycles. Its counters can be read while a run goes on.
type Recorder struct {
	start time.Time

	mu  sync.Mutex
	ops []Op

	inFlight   atomic.Int64
	created    atomic.Int64
	createErrs atomic.Int64
	done       atomic.Int64
	doneErrs   atomic.Int64
}

// NewRecorder starts the run's clock.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Start is when the run began.
func (r *Recorder) Start() time.Time { return r.start }

// Add records an operation that began at began and ended now.
func (r *Recorder) Add(p Phase, began time.Time, err error) {
	r.AddDur(p, began, time.Since(began), err)
}

// AddDur records an operation that began at began and took d.
func (r *Recorder) AddDur(p Phase, began time.Time, d time.Duration, err error) {
	op := Op{Phase: p, Sample: stats.Sample{Start: began.Sub(r.start), Dur: d, OK: err == nil}}
	if err != nil {
		op.Kind = client.KindOf(err)
		op.Err = err.Error()
	}
	switch p {
	case PhaseCreate:
		if err == nil {
			r.created.Add(1)
		} else {
			r.createErrs.Add(1)
		}
	case PhaseLifecycle:
		r.done.Add(1)
		if err != nil {
			r.doneErrs.Add(1)
		}
	}
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Ops returns a copy of everything recorded so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// Progress is a live view of a run.
type Progress struct {
	Elapsed          time.Duration
	InFlight         int64
	Created          int64
	CreateErrors     int64
	Lifecycles       int64
	LifecycleErrors  int64
	RecentCreateP50  time.Duration // over the last ~5 s
	RecentCreateP99  time.Duration
	RecentCreateRate float64 // successful creates per second over the last ~5 s
}

// Progress snapshots the counters and the recent create latencies.
func (r *Recorder) Progress() Progress {
	p := Progress{
		Elapsed:         time.Since(r.start),
		InFlight:        r.inFlight.Load(),
		Created:         r.created.Load(),
		CreateErrors:    r.createErrs.Load(),
		Lifecycles:      r.done.Load(),
		LifecycleErrors: r.doneErrs.Load(),
	}
	const recent = 5 * time.Second
	from := p.Elapsed - recent
	var lat []time.Duration
	r.mu.Lock()
	for i := len(r.ops) - 1; i >= 0 && len(lat) < 100000; i-- {
		op := r.ops[i]
		if op.End() < from {
			break
		}
		if op.Phase == PhaseCreate && op.OK {
			lat = append(lat, op.Dur)
		}
	}
	r.mu.Unlock()
	s := stats.Summarize(lat)
	p.RecentCreateP50 = time.Duration(s.P50Ms * 1e6)
	p.RecentCreateP99 = time.Duration(s.P99Ms * 1e6)
	p.RecentCreateRate = float64(len(lat)) / min(recent, p.Elapsed).Seconds()
	return p
}
