//go:build !linux

package process

import (
	"errors"
	"syscall"

	"fleetbox.dev/worker/internal/runtime"
)

// processStartTime is unknown without /proc: 0 makes holderAlive trust the pid alone.
func processStartTime(int) uint64 { return 0 }

// groupLive reports whether group pgid has any member; zombies count here, so callers wait for them to
// be reaped.
func groupLive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// killMarked needs the environment of other processes, which only Linux's /proc offers here.
func killMarked(map[string]bool) int { return 0 }

// stopRound stops the group only (marked processes outside it need Linux's /proc) and, with no way to
// read process states here, reports it done.
func stopRound(pgid int, _ string) int {
	_ = syscall.Kill(-pgid, syscall.SIGSTOP)
	return 0
}

// continueAll continues the group.
func continueAll(pgid int, _ string) { _ = syscall.Kill(-pgid, syscall.SIGCONT) }

// usageSample is one reading of a sandbox's processes; without /proc everything is unknown.
type usageSample struct {
	usage runtime.Usage
	cpu   map[int]cpuTime
}

type cpuTime struct{ start, ticks uint64 }

const clockTicks = 100

func sampleUsage(int, string, bool) usageSample {
	return usageSample{usage: runtime.Usage{MemoryBytes: -1, Processes: -1, OpenFiles: -1, CPUPercent: -1}}
}
