package bench

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

func machineFacts(python string) Machine {
	m := Machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = runtime.GOOS + " " + trim(b)
	} else if b, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.Kernel = trim(b)
	}
	m.CPU = firstField("/proc/cpuinfo", "model name")
	if mt := firstField("/proc/meminfo", "MemTotal"); mt != "" {
		m.MemTotal = mt
	}
	if b, err := exec.Command(python, "--version").CombinedOutput(); err == nil {
		m.Python = python + " (" + trim(b) + ")"
	}
	if b, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		m.Commit = trim(b)
		if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
			m.Commit += " (with uncommitted changes)"
		}
	}
	return m
}

// firstField returns the value of the first "key: value" line of a /proc file.
func firstField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
