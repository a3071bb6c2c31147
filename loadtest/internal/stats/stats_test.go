package stats

import (
	"slices"
	"testing"
	"time"
)

func ms(vs ...float64) []time.Duration {
	out := make([]time.Duration, len(vs))
	for i, v := range vs {
		out[i] = time.Duration(v * float64(time.Millisecond))
	}
	return out
}

func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample p50", ms(7), 50, 7 * time.Millisecond},
		{"one sample p99", ms(7), 99, 7 * time.Millisecond},
		{"two samples p50 is the lower", ms(1, 9), 50, 1 * time.Millisecond},
		{"two samples p51 is the upper", ms(1, 9), 51, 9 * time.Millisecond},
		{"two samples p99", ms(1, 9), 99, 9 * time.Millisecond},
		{"three samples p50 is the middle", ms(1, 2, 3), 50, 2 * time.Millisecond},
		{"ten samples p90", seq(10), 90, 9 * time.Millisecond},
		{"ten samples p99 is the max", seq(10), 99, 10 * time.Millisecond},
		{"twenty samples p95 (0.95*20 is not exact in floating point)", seq(20), 95, 19 * time.Millisecond},
		{"hundred samples p50", seq(100), 50, 50 * time.Millisecond},
		{"hundred samples p99", seq(100), 99, 99 * time.Millisecond},
		{"hundred samples p100", seq(100), 100, 100 * time.Millisecond},
		{"thousand samples p99.9", seq(1000), 99.9, 999 * time.Millisecond},
		{"p0 is the min", seq(5), 0, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

// Nearest rank: at least p% of the samples are ≤ the answer, and fewer than p% are < it.
func TestPercentileDefinition(t *testing.T) {
	for n := 1; n <= 60; n++ {
		s := seq(n)
		for _, p := range []float64{1, 10, 25, 50, 75, 90, 95, 99, 99.9} {
			got := Percentile(s, p)
			le, lt := 0, 0
			for _, v := range s {
				if v <= got {
					le++
				}
				if v < got {
					lt++
				}
			}
			if float64(le) < p/100*float64(n)-1e-9 || float64(lt) >= p/100*float64(n)+1e-9 {
				t.Errorf("n=%d p=%v: got %v (%d ≤, %d <)", n, p, got, le, lt)
			}
		}
	}
}

func TestSummarize(t *testing.T) {
	if got := Summarize(nil); got != (Summary{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", got)
	}
	in := ms(5, 1, 4, 2, 3)
	got := Summarize(in)
	want := Summary{Count: 5, MinMs: 1, P50Ms: 3, P90Ms: 5, P95Ms: 5, P99Ms: 5, MaxMs: 5, MeanMs: 3}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if !slices.Equal(in, ms(5, 1, 4, 2, 3)) {
		t.Error("Summarize sorted its input in place")
	}
	if got := Summarize(ms(0.0015)); got.P50Ms != 0.002 {
		t.Errorf("sub-microsecond rounding: p50 %v, want 0.002", got.P50Ms)
	}
}

func TestWindows(t *testing.T) {
	sec := time.Second
	samples := []Sample{
		{Start: 0, Dur: 100 * time.Millisecond, OK: true}, // ends 0.1 s → window 0
		{Start: 9 * sec, Dur: sec, OK: true},              // ends exactly 10 s → window 1
		{Start: 12 * sec, Dur: 300 * time.Millisecond},    // failed, window 1
		{Start: 11 * sec, Dur: 200 * time.Millisecond, OK: true},
		{Start: 24 * sec, Dur: 2 * sec, OK: true}, // ends 26 s, after total: last window
		{Start: 20 * sec, Dur: 500 * time.Millisecond, OK: true},
	}
	got := Windows(samples, 10*sec, 25*sec)
	if len(got) != 3 {
		t.Fatalf("got %d windows, want 3: %+v", len(got), got)
	}
	want := []struct {
		start, end float64
		ok, failed int
		rate       float64
		p50        float64
	}{
		{0, 10, 1, 0, 0.1, 100},
		{10, 20, 2, 1, 0.2, 200},
		{20, 25, 2, 0, 0.4, 500}, // the last window is 5 s long: 2 / 5 s
	}
	for i, w := range want {
		g := got[i]
		if g.StartS != w.start || g.EndS != w.end || g.OK != w.ok || g.Failed != w.failed || g.PerSecond != w.rate || g.LatencyP50 != w.p50 {
			t.Errorf("window %d = %+v, want %+v", i, g, w)
		}
	}
	if Windows(samples, 0, time.Second) != nil || Windows(samples, time.Second, 0) != nil {
		t.Error("zero width or total should give no windows")
	}
	if got := Windows(nil, 10*sec, 35*sec); len(got) != 4 || got[3].OK != 0 {
		t.Errorf("empty samples: %+v", got)
	}
}

func TestHistogram(t *testing.T) {
	if Histogram(nil) != nil {
		t.Error("empty histogram should be nil")
	}
	in := ms(0.5, 1, 1.2, 3, 3, 9, 10, 11, 250, 1999)
	h := Histogram(in)
	total := 0
	for i, b := range h {
		total += b.Count
		if b.HiMs <= b.LoMs {
			t.Errorf("bucket %d: [%v, %v)", i, b.LoMs, b.HiMs)
		}
		if i > 0 && h[i-1].HiMs != b.LoMs {
			t.Errorf("buckets %d and %d are not contiguous: %v then %v", i-1, i, h[i-1].HiMs, b.LoMs)
		}
	}
	if total != len(in) {
		t.Errorf("histogram holds %d samples, want %d", total, len(in))
	}
	if h[0].LoMs > 0.5 || h[len(h)-1].HiMs <= 1999 {
		t.Errorf("histogram [%v, %v) does not span the data", h[0].LoMs, h[len(h)-1].HiMs)
	}
	one := Histogram(ms(5))
	if len(one) != 1 || one[0].Count != 1 {
		t.Errorf("single sample: %+v", one)
	}
}
