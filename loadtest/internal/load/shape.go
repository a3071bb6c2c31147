// Package load runs churn shapes against an E2B-compatible deployment: each lifecycle is
// create → optional run_code → optional command → optional dwell → kill, driven sequentially, as a burst,
// at a fixed concurrency for a duration, as open-loop Poisson arrivals, or as a batch of idle sandboxes that
// are held, listed, sampled and killed. Every loop is bounded in count and in time.
package load

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Kind names a shape.
type Kind string

const (
	// Sequential runs N lifecycles one after another.
	Sequential Kind = "sequential"
	// Burst starts N lifecycles at once, Rounds times, waiting for each round (and Pause) before the next.
	Burst Kind = "burst"
	// Concurrent keeps Concurrency lifecycles in flight for Duration (closed loop), at most N in all.
	Concurrent Kind = "concurrent"
	// Poisson starts lifecycles at exponentially distributed intervals with mean 1/Rate for Duration
	// (open loop: arrivals do not wait for the system), at most N in all; each sandbox lives Dwell.
	Poisson Kind = "poisson"
	// Idle creates N sandboxes with Concurrency at a time and keeps them all, then lists them, runs the
	// code in Sample of them, holds them for Dwell, and kills them all.
	Idle Kind = "idle"
)

// Kinds lists the shapes in the order the help text shows them.
var Kinds = []Kind{Sequential, Burst, Concurrent, Poisson, Idle}

// Shape is a load pattern.
type Shape struct {
	Kind        Kind          `json:"kind"`
	N           int           `json:"n,omitempty"`
	Rounds      int           `json:"rounds,omitempty"`
	Pause       time.Duration `json:"pause_ns,omitempty"`
	Concurrency int           `json:"concurrency,omitempty"`
	Duration    time.Duration `json:"duration_ns,omitempty"`
	Rate        float64       `json:"rate_per_s,omitempty"`
	Dwell       time.Duration `json:"dwell_ns,omitempty"`
	Sample      int           `json:"sample,omitempty"`
}

// DefaultMaxLifecycles bounds the closed- and open-loop shapes when N is not given.
const DefaultMaxLifecycles = 100000

// Validate checks a shape and fills its defaults.
func (s *Shape) Validate() error {
	if s.N < 0 || s.Concurrency < 0 || s.Duration < 0 || s.Rate < 0 || s.Dwell < 0 || s.Rounds < 0 || s.Pause < 0 {
		return errors.New("shape parameters must not be negative")
	}
	switch s.Kind {
	case Sequential:
		if s.N == 0 {
			return errors.New("sequential needs -n")
		}
	case Burst:
		if s.N == 0 {
			return errors.New("burst needs -n")
		}
		s.Rounds = max(s.Rounds, 1)
	case Concurrent:
		if s.Concurrency == 0 || s.Duration == 0 {
			return errors.New("concurrent needs -c and -duration")
		}
		if s.N == 0 {
			s.N = DefaultMaxLifecycles
		}
	case Poisson:
		if s.Rate == 0 || s.Duration == 0 {
			return errors.New("poisson needs -rate and -duration")
		}
		if s.N == 0 {
			s.N = DefaultMaxLifecycles
		}
	case Idle:
		if s.N == 0 {
			return errors.New("idle needs -n")
		}
		s.Concurrency = max(s.Concurrency, 1)
	default:
		return fmt.Errorf("unknown shape %q (one of %v)", s.Kind, Kinds)
	}
	return nil
}

// MaxInFlight is the most lifecycles the shape can have running at once, to size the HTTP transport.
func (s Shape) MaxInFlight() int {
	switch s.Kind {
	case Burst:
		return s.N
	case Concurrent, Idle:
		return s.Concurrency
	case Poisson:
		// Little's law with headroom: rate × (dwell + a second of work), at least 16.
		return max(16, int(s.Rate*(s.Dwell.Seconds()+1)*2))
	}
	return 1
}

// String describes the shape in one line.
func (s Shape) String() string {
	switch s.Kind {
	case Sequential:
		return fmt.Sprintf("sequential n=%d", s.N)
	case Burst:
		if s.Rounds > 1 {
			return fmt.Sprintf("burst n=%d ×%d rounds", s.N, s.Rounds)
		}
		return fmt.Sprintf("burst n=%d", s.N)
	case Concurrent:
		return fmt.Sprintf("concurrency %d for %v", s.Concurrency, s.Duration)
	case Poisson:
		return fmt.Sprintf("poisson %.4g/s for %v, dwell %v", s.Rate, s.Duration, s.Dwell)
	case Idle:
		return fmt.Sprintf("idle n=%d (c=%d), run_code in %d, hold %v", s.N, s.Concurrency, s.Sample, s.Dwell)
	}
	return string(s.Kind)
}

// PoissonSchedule returns the arrival offsets of a Poisson process of the given rate (per second) in
// [0, dur), at most max of them: exponential inter-arrival times drawn from rng.
func PoissonSchedule(rate float64, dur time.Duration, maxN int, rng *rand.Rand) []time.Duration {
	if rate <= 0 || dur <= 0 || maxN <= 0 {
		return nil
	}
	var out []time.Duration
	t := 0.0
	for len(out) < maxN {
		t += rng.ExpFloat64() / rate
		at := time.Duration(t * float64(time.Second))
		if at >= dur {
			break
		}
		out = append(out, at)
	}
	return out
}
