package stats

import (
	"math"
	"time"
)

// Sample is one timed operation: when it started (offset from the start of the run), how long it took,
// and whether it succeeded.
type Sample struct {
	Start time.Duration
	Dur   time.Duration
	OK    bool
}

// End is the offset at which the operation finished.
func (s Sample) End() time.Duration { return s.Start + s.Dur }

// Window is one fixed-width slice of a run. An operation belongs to the window in which it finished, so
// the throughput of a window is what completed in it.
type Window struct {
	StartS     float64 `json:"start_s"`
	EndS       float64 `json:"end_s"`
	OK         int     `json:"ok"`
	Failed     int     `json:"failed"`
	PerSecond  float64 `json:"per_second"` // successful completions per second
	LatencyP50 float64 `json:"p50_ms"`     // of the successful operations
	LatencyP99 float64 `json:"p99_ms"`
	LatencyMax float64 `json:"max_ms"`
}

// Windows buckets samples by completion time into windows of width covering [0, total). The last window
// may be shorter than width; its rate is computed over its real length. A sample completing exactly at a
// boundary belongs to the later window; one completing at or after total goes into the last window.
func Windows(samples []Sample, width, total time.Duration) []Window {
	if width <= 0 || total <= 0 {
		return nil
	}
	n := int(math.Ceil(float64(total) / float64(width)))
	lat := make([][]time.Duration, n)
	out := make([]Window, n)
	for i := range out {
		start := time.Duration(i) * width
		end := min(start+width, total)
		out[i].StartS = start.Seconds()
		out[i].EndS = end.Seconds()
	}
	for _, s := range samples {
		i := int(s.End() / width)
		i = max(0, min(i, n-1))
		if s.OK {
			out[i].OK++
			lat[i] = append(lat[i], s.Dur)
		} else {
			out[i].Failed++
		}
	}
	for i := range out {
		if l := out[i].EndS - out[i].StartS; l > 0 {
			out[i].PerSecond = math.Round(float64(out[i].OK)/l*100) / 100
		}
		sum := Summarize(lat[i])
		out[i].LatencyP50, out[i].LatencyP99, out[i].LatencyMax = sum.P50Ms, sum.P99Ms, sum.MaxMs
	}
	return out
}
