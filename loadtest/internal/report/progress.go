package report

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"fleetbox.dev/loadtest/internal/load"
)

// IsTerminal reports whether f is a character device (a terminal), without a dependency.
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Live redraws one progress line on w every interval until ctx ends, then clears it.
func Live(ctx context.Context, w io.Writer, rec *load.Recorder, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprint(w, "\r\033[K")
			return
		case <-t.C:
			fmt.Fprint(w, "\r\033[K"+ProgressLine(rec.Progress()))
		}
	}
}

// ProgressLine formats a progress snapshot.
func ProgressLine(p load.Progress) string {
	return fmt.Sprintf("%6.1fs  in flight %4d  created %6d (%d failed)  lifecycles %6d (%d failed)  last 5s: %.1f creates/s p50 %s p99 %s",
		p.Elapsed.Seconds(), p.InFlight, p.Created, p.CreateErrors, p.Lifecycles, p.LifecycleErrors,
		p.RecentCreateRate, msText(float64(p.RecentCreateP50)/1e6), msText(float64(p.RecentCreateP99)/1e6))
}
