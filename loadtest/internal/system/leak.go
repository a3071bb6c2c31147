package system

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sweep waits up to grace for the processes that refer to dir (their working directory is below it, or
// their command line names it) to exit, then SIGKILLs the rest and describes them. Without /proc it finds
// nothing: the process-group kills are all there is.
func Sweep(dir string, grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	for {
		pids := referencing(dir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var out []string
			for _, pid := range pids {
				out = append(out, fmt.Sprintf("pid %d: %s", pid, describe(pid)))
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// referencing lists the live processes other than this one whose working directory is below dir or whose
// command line mentions dir.
func referencing(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		base := filepath.Join("/proc", e.Name())
		if st, err := os.ReadFile(filepath.Join(base, "stat")); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				continue // a zombie is already dead; its parent has not reaped it yet
			}
		}
		if cwd, err := os.Readlink(filepath.Join(base, "cwd")); err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/")) {
			out = append(out, pid)
			continue
		}
		if cmd, err := os.ReadFile(filepath.Join(base, "cmdline")); err == nil && strings.Contains(string(cmd), dir) {
			out = append(out, pid)
		}
	}
	return out
}

// describe is a process's command line, shortened.
func describe(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return "(gone)"
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
