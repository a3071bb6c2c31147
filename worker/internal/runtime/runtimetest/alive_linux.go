package runtimetest

import (
	"bytes"
	"os"
	"strconv"
)

// ProcessAlive reports whether pid runs (a zombie is dead: it only waits to be reaped).
func ProcessAlive(pid int) bool {
	state, _, ok := stat(strconv.Itoa(pid))
	return ok && state != 'Z' && state != 'X'
}

// GroupAlive reports whether process group pgid has a member that is not a zombie.
func GroupAlive(pgid int) bool {
	names, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range names {
		state, pgrp, ok := stat(e.Name())
		if ok && pgrp == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	return false
}

func stat(pid string) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) == 0 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(string(f[2]))
	return f[0][0], pgrp, err == nil
}
