package stats

import (
	"math"
	"time"
)

// Bucket is one histogram bar: the count of latencies in [LoMs, HiMs).
type Bucket struct {
	LoMs  float64 `json:"lo_ms"`
	HiMs  float64 `json:"hi_ms"`
	Count int     `json:"count"`
}

// Histogram puts ds into log-spaced buckets (ten per factor of ten, ~1.26× wide) spanning the data, so a
// 2 ms and a 2 s tail are both readable on one chart.
func Histogram(ds []time.Duration) []Bucket {
	if len(ds) == 0 {
		return nil
	}
	const perDecade = 10
	lo, hi := ds[0], ds[0]
	for _, d := range ds {
		lo, hi = min(lo, d), max(hi, d)
	}
	edge := func(i int) float64 { return math.Pow(10, float64(i)/perDecade) }
	idx := func(d time.Duration) int {
		ms := math.Max(float64(d)/1e6, 1e-3)
		return int(math.Floor(math.Log10(ms) * perDecade))
	}
	first, last := idx(lo), idx(hi)
	out := make([]Bucket, last-first+1)
	for i := range out {
		out[i].LoMs = round3(edge(first + i))
		out[i].HiMs = round3(edge(first + i + 1))
	}
	for _, d := range ds {
		out[idx(d)-first].Count++
	}
	return out
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
