//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// serverSysProcAttr puts each server in its own process group (so the whole
// group can be signalled) and asks the kernel to SIGTERM it if the test
// binary dies first.
func serverSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// procsReferencing lists processes (other than us) whose working directory
// is below dir or whose command line mentions dir.
func procsReferencing(dir string) []int {
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
		if stat, err := os.ReadFile(filepath.Join(base, "stat")); err == nil {
			// Zombies are already dead; their parent just has not reaped them.
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		if cwd, err := os.Readlink(filepath.Join(base, "cwd")); err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/")) {
			out = append(out, pid)
			continue
		}
		if cmdline, err := os.ReadFile(filepath.Join(base, "cmdline")); err == nil && strings.Contains(string(cmdline), dir) {
			out = append(out, pid)
		}
	}
	return out
}

func procDescription(pid int) string {
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
