package system

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// CPU is a process's CPU time: its own (user + system) and that of its children it has waited for. A worker
// reaps the kernels and holders of killed sandboxes, so their CPU lands in its Children.
type CPU struct {
	Self, Children time.Duration
}

// Sub returns c - o.
func (c CPU) Sub(o CPU) CPU { return CPU{Self: c.Self - o.Self, Children: c.Children - o.Children} }

// CPUOf reads /proc/PID/stat (Linux only).
func CPUOf(pid int) (CPU, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return CPU{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return CPU{}, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	// After "pid (comm) ": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return CPU{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var t [4]int64
	for j := range t {
		if t[j], err = strconv.ParseInt(f[11+j], 10, 64); err != nil {
			return CPU{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	return CPU{Self: time.Duration(t[0]+t[1]) * clockTick, Children: time.Duration(t[2]+t[3]) * clockTick}, nil
}

// MachineBusy returns the CPU time all CPUs of the machine spent not idle since boot (/proc/stat).
func MachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		// Fields: user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
		// counted in user and nice.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * clockTick, nil
}
