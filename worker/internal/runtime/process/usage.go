package process

import (
	"context"
	"fmt"
	"time"

	"fleetbox.dev/worker/internal/runtime"
)

var _ runtime.UsageReporter = (*Sandbox)(nil)

// Usage sums what the sandbox's processes use now, from /proc on Linux (elsewhere every figure is -1):
// resident memory, processes (the holder not counted) and open file descriptors of the group's members,
// and of the processes outside the group that carry the sandbox's id once the sandbox ran a command (as
// Destroy sweeps). CPUPercent is the CPU time the processes used since the previous call, per wall-clock
// time, or -1 on the first call; time used by processes that exited in between is not counted. The
// process runtime enforces no limits: they are 0. A sandbox that never ran a process uses nothing and is
// answered without reading /proc.
func (s *Sandbox) Usage(context.Context) (runtime.Usage, error) {
	s.mu.Lock()
	pgid, destroyed, marked := s.pgid, s.destroyed, s.ranCommands
	s.mu.Unlock()
	if destroyed {
		return runtime.Usage{}, fmt.Errorf("usage of %s: %w", s.id, runtime.ErrDestroyed)
	}
	if pgid == 0 {
		return runtime.Usage{}, nil
	}
	now := time.Now()
	cur := sampleUsage(pgid, s.id, marked)
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	if cur.cpu != nil && s.lastCPU != nil {
		cur.usage.CPUPercent = cpuPercent(s.lastCPU, cur.cpu, now.Sub(s.lastAt))
	}
	s.lastCPU, s.lastAt = cur.cpu, now
	return cur.usage, nil
}

// cpuPercent is the CPU time used between two readings in percent of one core over elapsed: the growth
// of each process present in both, plus all of a process that is new in cur (started in between).
func cpuPercent(prev, cur map[int]cpuTime, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return -1
	}
	var ticks uint64
	for pid, c := range cur {
		if p, ok := prev[pid]; ok && p.start == c.start {
			if c.ticks > p.ticks {
				ticks += c.ticks - p.ticks
			}
			continue
		}
		ticks += c.ticks
	}
	return float64(ticks) / clockTicks / elapsed.Seconds() * 100
}
