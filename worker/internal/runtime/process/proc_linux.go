package process

import (
	"bytes"
	"os"
	"strconv"
	"syscall"

	"fleetbox.dev/worker/internal/runtime"
)

// procStat is what the worker reads from /proc/<pid>/stat.
type procStat struct {
	state     byte
	pgrp      int
	startTime uint64
	ticks     uint64 // utime + stime, in clock ticks
	rssPages  int64
}

func readProcStat(pid string) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command name (field 2) may contain spaces and parentheses; fields after the last ')' are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state), f[2] field 5 (pgrp), f[11] and f[12] fields 14 and 15 (utime, stime),
	// f[19] field 22 (starttime), f[21] field 24 (rss, in pages: statm's "resident").
	if len(f) < 22 || len(f[0]) == 0 {
		return procStat{}, false
	}
	pgrp, err1 := strconv.Atoi(string(f[2]))
	start, err2 := strconv.ParseUint(string(f[19]), 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	utime, _ := strconv.ParseUint(string(f[11]), 10, 64)
	stime, _ := strconv.ParseUint(string(f[12]), 10, 64)
	rss, _ := strconv.ParseInt(string(f[21]), 10, 64)
	return procStat{state: f[0][0], pgrp: pgrp, startTime: start, ticks: utime + stime, rssPages: rss}, true
}

// processStartTime returns the start time of pid in clock ticks since boot, or 0.
func processStartTime(pid int) uint64 {
	st, ok := readProcStat(strconv.Itoa(pid))
	if !ok {
		return 0
	}
	return st.startTime
}

// dead reports whether a /proc state is a zombie or a dead process.
func dead(state byte) bool { return state == 'Z' || state == 'X' || state == 'x' }

// stoppedOrDead reports whether a /proc state is stopped by a signal ('T'), stopped by a tracer ('t'),
// or dead.
func stoppedOrDead(state byte) bool { return state == 'T' || state == 't' || dead(state) }

// groupLive reports whether group pgid has a member that is not a zombie.
func groupLive(pgid int) bool {
	found := false
	eachPid(func(pid string) bool {
		st, ok := readProcStat(pid)
		if ok && st.pgrp == pgid && !dead(st.state) {
			found = true
			return false
		}
		return true
	})
	return found
}

// markedBy returns the sandbox id among ids that the environment of pid carries as E2B_SANDBOX_ID.
// A process whose environment cannot be read (another user's, or gone) carries none.
func markedBy(pid string, ids map[string]bool) (string, bool) {
	const key = "E2B_SANDBOX_ID="
	b, err := os.ReadFile("/proc/" + pid + "/environ")
	if err != nil {
		return "", false
	}
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if id, ok := bytes.CutPrefix(kv, []byte(key)); ok {
			return string(id), ids[string(id)]
		}
	}
	return "", false
}

// eachMarked calls fn with every process (but the worker itself) whose environment marks it as belonging
// to one of the sandboxes ids, also those that left the sandbox's process group. One pass over /proc
// serves all ids.
func eachMarked(ids map[string]bool, fn func(pid int)) {
	self := os.Getpid()
	eachPid(func(pid string) bool {
		if _, ok := markedBy(pid, ids); ok {
			if p, err := strconv.Atoi(pid); err == nil && p != self {
				fn(p)
			}
		}
		return true
	})
}

// eachMember calls fn with every process of a sandbox but its holder: the members of group pgid and, if
// marked is set, the processes outside the group that carry the sandbox's id (eachMarked). One pass over
// /proc; the environments are only read for processes outside the group.
func eachMember(pgid int, id string, marked bool, fn func(pid int, st procStat)) {
	self := os.Getpid()
	ids := map[string]bool{id: true}
	eachPid(func(pid string) bool {
		st, ok := readProcStat(pid)
		if !ok {
			return true
		}
		p, err := strconv.Atoi(pid)
		if err != nil || p == self || p == pgid {
			return true
		}
		if st.pgrp == pgid {
			fn(p, st)
		} else if marked {
			if _, ok := markedBy(pid, ids); ok {
				fn(p, st)
			}
		}
		return true
	})
}

// killMarked kills every process marked as belonging to one of the sandboxes ids (eachMarked) and returns
// how many it signalled.
func killMarked(ids map[string]bool) int {
	n := 0
	eachMarked(ids, func(pid int) {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	})
	return n
}

// stopRound sends SIGSTOP to group pgid, then to every process of the sandbox (eachMember, marked ones
// included) that /proc does not show stopped or dead yet, and returns how many those were: 0 means every
// process of the sandbox is stopped.
//
// A process in an uninterruptible sleep ('D') with SIGSTOP pending counts as stopped: it runs no code of
// its own before it stops. That is where a shell waits for a child it vforked (dash does) that was stopped
// before it could exec: the shell would stay in 'D' until Resume.
func stopRound(pgid int, id string) int {
	_ = syscall.Kill(-pgid, syscall.SIGSTOP)
	running := 0
	eachMember(pgid, id, true, func(pid int, st procStat) {
		if stoppedOrDead(st.state) || st.state == 'D' && stopPending(pid) {
			return
		}
		_ = syscall.Kill(pid, syscall.SIGSTOP)
		running++
	})
	return running
}

// stopPending reports whether /proc/<pid>/status shows SIGSTOP pending for the process (ShdPnd, where
// kill(2) queues it) or its main thread (SigPnd).
func stopPending(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	bit := uint64(1) << (uint(syscall.SIGSTOP) - 1)
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || (string(k) != "ShdPnd" && string(k) != "SigPnd") {
			continue
		}
		if mask, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64); err == nil && mask&bit != 0 {
			return true
		}
	}
	return false
}

// continueAll sends SIGCONT to group pgid and to the sandbox's marked processes outside it.
func continueAll(pgid int, id string) {
	_ = syscall.Kill(-pgid, syscall.SIGCONT)
	eachMember(pgid, id, true, func(pid int, st procStat) {
		if st.pgrp != pgid {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
}

// usageSample is one reading of a sandbox's processes: the usage /proc shows, and each process's CPU
// time for the next reading's CPUPercent.
type usageSample struct {
	usage runtime.Usage
	cpu   map[int]cpuTime // by pid
}

// cpuTime is a process's CPU time in clock ticks, with its start time so that a reused pid is told apart.
type cpuTime struct{ start, ticks uint64 }

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every Linux architecture Go supports but
// alpha.
const clockTicks = 100

// sampleUsage reads the memory, process count, open files and CPU times of a sandbox's processes
// (eachMember; the holder does not count). CPUPercent is left -1 for the caller.
func sampleUsage(pgid int, id string, marked bool) usageSample {
	page := int64(os.Getpagesize())
	s := usageSample{usage: runtime.Usage{CPUPercent: -1}, cpu: map[int]cpuTime{}}
	eachMember(pgid, id, marked, func(pid int, st procStat) {
		if dead(st.state) {
			return
		}
		s.usage.Processes++
		s.usage.MemoryBytes += st.rssPages * page
		if fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd"); err == nil {
			s.usage.OpenFiles += len(fds)
		}
		s.cpu[pid] = cpuTime{start: st.startTime, ticks: st.ticks}
	})
	return s
}

// eachPid calls fn with every pid in /proc until fn returns false.
func eachPid(fn func(pid string) bool) {
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return
	}
	for _, name := range names {
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		if !fn(name) {
			return
		}
	}
}
