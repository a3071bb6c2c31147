// Package stats holds the load tester's arithmetic: nearest-rank percentiles, latency summaries, fixed-width
// time windows and histogram buckets. Durations come from Go's monotonic clock (time.Since), so a wall-clock
// step during a run cannot bend a latency.
package stats

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the nearest-rank method: the smallest
// value such that at least p% of the samples are ≤ it. It never interpolates, so every percentile is a
// latency that was observed; with few samples the high percentiles are the maximum (p99 of 10 samples is
// the 10th). An empty sample gives 0.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	// p/100*n can land a hair above an integer in floating point (e.g. 0.95*20); pull it back.
	if r := float64(rank-1) * 100 / float64(n); r >= p {
		rank--
	}
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Count  int     `json:"count"`
	MinMs  float64 `json:"min_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P95Ms  float64 `json:"p95_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
}

// Ms converts a duration to float milliseconds, rounded to microseconds.
func Ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// Summarize sorts a copy of ds and summarizes it.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Summary{
		Count:  len(s),
		MinMs:  Ms(s[0]),
		P50Ms:  Ms(Percentile(s, 50)),
		P90Ms:  Ms(Percentile(s, 90)),
		P95Ms:  Ms(Percentile(s, 95)),
		P99Ms:  Ms(Percentile(s, 99)),
		MaxMs:  Ms(s[len(s)-1]),
		MeanMs: Ms(sum / time.Duration(len(s))),
	}
}
