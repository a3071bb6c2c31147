package process

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// procStat is what the worker reads from /proc/<pid>/stat.
type procStat struct {
	state     byte
	pgrp      int
	startTime uint64
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
	// f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) == 0 {
		return procStat{}, false
	}
	pgrp, err1 := strconv.Atoi(string(f[2]))
	start, err2 := strconv.ParseUint(string(f[19]), 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{state: f[0][0], pgrp: pgrp, startTime: start}, true
}

// processStartTime returns the start time of pid in clock ticks since boot, or 0.
func processStartTime(pid int) uint64 {
	st, ok := readProcStat(strconv.Itoa(pid))
	if !ok {
		return 0
	}
	return st.startTime
}

// groupLive reports whether group pgid has a member that is not a zombie.
func groupLive(pgid int) bool {
	found := false
	eachPid(func(pid string) bool {
		st, ok := readProcStat(pid)
		if ok && st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			found = true
			return false
		}
		return true
	})
	return found
}

// killMarked kills every process whose environment marks it as belonging to one of the sandboxes ids
// (also those that left the sandbox's process group) and returns how many it signalled. One pass over
// /proc serves all ids.
func killMarked(ids map[string]bool) int {
	const key = "E2B_SANDBOX_ID="
	self := os.Getpid()
	n := 0
	eachPid(func(pid string) bool {
		b, err := os.ReadFile("/proc/" + pid + "/environ")
		if err != nil {
			return true
		}
		for kv := range bytes.SplitSeq(b, []byte{0}) {
			if id, ok := bytes.CutPrefix(kv, []byte(key)); ok && ids[string(id)] {
				if p, err := strconv.Atoi(pid); err == nil && p != self && syscall.Kill(p, syscall.SIGKILL) == nil {
					n++
				}
				break
			}
		}
		return true
	})
	return n
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
