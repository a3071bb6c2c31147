package hostmem

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// availableMB reads MemAvailable from /proc/meminfo (the kernel's estimate of memory that can be used
// without swapping, page cache included).
func availableMB() (int, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("read meminfo: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				return 0, fmt.Errorf("parse MemAvailable %q: %w", rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("meminfo has no MemAvailable: %w", ErrUnknown)
}
