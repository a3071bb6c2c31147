package system

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Watchdog is a small shell process that outlives the test binary: it is told the process groups and the
// directories of what the tests start. If the test binary dies without releasing it (a panic, go test's
// timeout, SIGKILL), its stdin closes and it terminates those groups and kills every process still working
// in or naming one of the directories (sandbox processes of a worker that was killed, say).
type Watchdog struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	mu  sync.Mutex
}

// The script reads a process group id or a directory (an absolute path) per line until "done".
const watchdogScript = `
groups=""
dirs=""
while IFS= read -r line; do
  case "$line" in
    done) exit 0 ;;
    /*) dirs="$dirs$line
" ;;
    *) groups="$groups $line" ;;
  esac
done
for g in $groups; do kill -TERM -- "-$g" 2>/dev/null; done
sleep 3
for g in $groups; do kill -KILL -- "-$g" 2>/dev/null; done
for d in /proc/[0-9]*; do
  pid=${d#/proc/}
  [ "$pid" = "$$" ] && continue
  cwd=$(readlink "$d/cwd" 2>/dev/null) || continue
  cmdline=$(tr '\000' ' ' < "$d/cmdline" 2>/dev/null)
  while IFS= read -r dir; do
    [ -n "$dir" ] || continue
    case "$cwd" in "$dir"|"$dir"/*) kill -KILL "$pid" 2>/dev/null; break ;; esac
    case "$cmdline" in *"$dir"*) kill -KILL "$pid" 2>/dev/null; break ;; esac
  done <<EOF
$dirs
EOF
done
echo "fleetbox watchdog: the test process went away; cleaned up the processes it had started" >&2
`

// StartWatchdog starts a watchdog; Release ends it.
func StartWatchdog() (*Watchdog, error) {
	cmd := exec.Command("/bin/bash", "-c", watchdogScript)
	cmd.Dir = "/"
	cmd.Env = CleanEnv()
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // not hit by a ^C to our group
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &Watchdog{cmd: cmd, in: in}, nil
}

// WatchGroup adds a process group.
func (w *Watchdog) WatchGroup(pgid int) { w.send(fmt.Sprint(pgid)) }

// WatchDir adds a directory (absolute, without symbolic links).
func (w *Watchdog) WatchDir(dir string) { w.send(dir) }

func (w *Watchdog) send(line string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = io.WriteString(w.in, line+"\n")
}

// Release tells the watchdog that all is well and waits (5 s at most) for it to exit.
func (w *Watchdog) Release() {
	w.send("done")
	w.mu.Lock()
	_ = w.in.Close()
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { _ = w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = w.cmd.Process.Kill()
	}
}

// The watchdog of a test binary: started on first use, released by AfterTests.
var shared struct {
	mu sync.Mutex
	wd *Watchdog
}

func sharedWatchdog() (*Watchdog, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.wd == nil {
		wd, err := StartWatchdog()
		if err != nil {
			return nil, fmt.Errorf("start the process watchdog: %w", err)
		}
		shared.wd = wd
	}
	return shared.wd, nil
}

func releaseSharedWatchdog() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.wd != nil {
		shared.wd.Release()
		shared.wd = nil
	}
}
