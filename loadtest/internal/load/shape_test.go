package load

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestPoissonScheduleRate(t *testing.T) {
	const rate = 50.0
	dur := 1000 * time.Second
	sched := PoissonSchedule(rate, dur, 1_000_000, rand.New(rand.NewPCG(1, 2)))
	// A Poisson count over 1000 s at 50/s has mean 50,000 and standard deviation √50,000 ≈ 224.
	mean := rate * dur.Seconds()
	sd := math.Sqrt(mean)
	if got := float64(len(sched)); math.Abs(got-mean) > 4*sd {
		t.Errorf("%v arrivals, want %v ± %v", got, mean, 4*sd)
	}
	// Inter-arrival times are exponential: mean 1/rate, and their coefficient of variation is 1.
	var sum, sum2 float64
	prev := time.Duration(0)
	for i, at := range sched {
		if at < prev || at >= dur {
			t.Fatalf("arrival %d at %v: not increasing or past %v", i, at, dur)
		}
		gap := (at - prev).Seconds()
		sum += gap
		sum2 += gap * gap
		prev = at
	}
	n := float64(len(sched))
	m := sum / n
	cv := math.Sqrt(sum2/n-m*m) / m
	if math.Abs(m-1/rate) > 0.02/rate {
		t.Errorf("mean gap %v s, want %v", m, 1/rate)
	}
	if math.Abs(cv-1) > 0.03 {
		t.Errorf("coefficient of variation %v, want ≈ 1 (exponential gaps)", cv)
	}
	// Per-second counts have variance ≈ mean (dispersion index 1), as a Poisson process must.
	counts := make([]float64, int(dur.Seconds()))
	for _, at := range sched {
		counts[int(at.Seconds())]++
	}
	var cm, cv2 float64
	for _, c := range counts {
		cm += c
	}
	cm /= float64(len(counts))
	for _, c := range counts {
		cv2 += (c - cm) * (c - cm)
	}
	cv2 /= float64(len(counts) - 1)
	if d := cv2 / cm; d < 0.85 || d > 1.15 {
		t.Errorf("dispersion index %v, want ≈ 1", d)
	}
}

func TestPoissonScheduleBoundsAndSeed(t *testing.T) {
	a := PoissonSchedule(100, 10*time.Second, 50, rand.New(rand.NewPCG(7, 7)))
	if len(a) != 50 {
		t.Errorf("cap of 50 gave %d arrivals", len(a))
	}
	b := PoissonSchedule(100, 10*time.Second, 50, rand.New(rand.NewPCG(7, 7)))
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different schedule at %d: %v vs %v", i, a[i], b[i])
		}
	}
	for _, s := range [][]time.Duration{
		PoissonSchedule(0, time.Second, 10, rand.New(rand.NewPCG(1, 1))),
		PoissonSchedule(10, 0, 10, rand.New(rand.NewPCG(1, 1))),
		PoissonSchedule(10, time.Second, 0, rand.New(rand.NewPCG(1, 1))),
	} {
		if len(s) != 0 {
			t.Errorf("degenerate schedule has %d arrivals", len(s))
		}
	}
}

func TestShapeValidate(t *testing.T) {
	tests := []struct {
		name    string
		shape   Shape
		wantErr bool
		check   func(Shape) bool
	}{
		{"sequential needs n", Shape{Kind: Sequential}, true, nil},
		{"sequential ok", Shape{Kind: Sequential, N: 3}, false, nil},
		{"burst defaults to one round", Shape{Kind: Burst, N: 5}, false, func(s Shape) bool { return s.Rounds == 1 }},
		{"concurrent needs duration", Shape{Kind: Concurrent, Concurrency: 2}, true, nil},
		{"concurrent gets a cap", Shape{Kind: Concurrent, Concurrency: 2, Duration: time.Second}, false,
			func(s Shape) bool { return s.N == DefaultMaxLifecycles }},
		{"poisson needs rate", Shape{Kind: Poisson, Duration: time.Second}, true, nil},
		{"poisson ok", Shape{Kind: Poisson, Rate: 1, Duration: time.Second}, false, nil},
		{"idle gets concurrency 1", Shape{Kind: Idle, N: 3}, false, func(s Shape) bool { return s.Concurrency == 1 }},
		{"negative", Shape{Kind: Sequential, N: -1}, true, nil},
		{"unknown kind", Shape{Kind: "zigzag", N: 1}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.shape
			err := s.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.check != nil && !tt.check(s) {
				t.Errorf("defaults not filled: %+v", s)
			}
		})
	}
}

func TestProfilesValid(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Profiles {
		if seen[p.Name] {
			t.Errorf("profile %q twice", p.Name)
		}
		seen[p.Name] = true
		s := p.Shape
		if err := s.Validate(); err != nil {
			t.Errorf("profile %q: %v", p.Name, err)
		}
		if p.Description == "" {
			t.Errorf("profile %q has no description", p.Name)
		}
	}
	for _, name := range []string{"smoke", "churn", "burst50", "idle1000"} {
		if _, err := Lookup(name); err != nil {
			t.Errorf("Lookup(%q): %v", name, err)
		}
	}
	if _, err := Lookup("nope"); err == nil {
		t.Error("Lookup of an unknown profile succeeded")
	}
}
