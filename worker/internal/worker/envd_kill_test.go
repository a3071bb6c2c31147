package worker_test

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
	rt "fleetbox.dev/worker/internal/runtime/runtimetest"
)

// Killing a sandbox ends everything envd holds in it: processes (with their children, those of a
// terminal's job control and orphans of exited commands), terminals, watches, uploads; their streams end
// with a 503 and no goroutine of theirs is left.
// Not parallel: it counts the goroutines of the whole test binary.
func TestKillEndsEnvd(t *testing.T) {
	h := newHarness(t)
	w := h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC
	var pids []int
	pidsIn := func(s string) {
		t.Helper()
		for _, m := range regexp.MustCompile(`PID=(\d+)`).FindAllStringSubmatch(s, -1) {
			pid, _ := strconv.Atoi(m[1])
			pids = append(pids, pid)
		}
	}

	sleeper := mustStart(t, nc, id, schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "sleep", Args: []string{"1000"}}})
	pids = append(pids, int(sleeper.pid))
	// An exited command leaves an orphan in its group, which nobody tracks.
	pidsIn(runSh(t, nc, id, "sleep 1000 >/dev/null 2>&1 & echo PID=$!").stdout)
	// An escapee in a session of its own.
	pidsIn(runSh(t, nc, id, "setsid sleep 1000 >/dev/null 2>&1 & echo PID=$!").stdout)
	term := mustStart(t, nc, id, schema.ProcessStartRequest{
		Process: schema.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-i"}, Envs: map[string]string{"PS1": "$ "}},
		PTY:     &schema.PTYSize{Cols: 80, Rows: 24},
	})
	pids = append(pids, int(term.pid))
	// A background job of an interactive shell gets a process group of its own.
	if _, err := op[schema.Empty](t, nc, id, schema.OpProcessInput, schema.ProcessInputRequest{
		Process: schema.ProcessSelector{PID: term.pid}, PTY: []byte("sleep 1001 & echo PID=$!=\n"),
	}); err != nil {
		t.Fatal(err)
	}
	var out string
	for !regexp.MustCompile(`PID=\d+=`).MatchString(out) {
		more, err := term.readUntil(t.Context(), "=")
		if err != nil {
			t.Fatal(err)
		}
		out += more
	}
	pidsIn(out)
	if len(pids) != 5 {
		t.Fatalf("pids %v", pids)
	}
	for _, pid := range pids {
		if !rt.ProcessAlive(pid) {
			t.Fatalf("process %d not running", pid)
		}
	}
	ws, err := startWatch(t, h, id, schema.FsWatchRequest{Path: "/", Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op[schema.WatcherRequest](t, nc, id, schema.OpFsWatcherCreate, schema.FsWatchRequest{Path: "/tmp"}); err != nil {
		t.Fatal(err)
	}
	upload := schema.NewToken(8)
	if _, err := op[schema.Empty](t, nc, id, schema.OpFileWriteBegin, schema.FileWriteRequest{Stream: upload, Path: "up.bin"}); err != nil {
		t.Fatal(err)
	}
	uw, _ := bus.NewStreamWriter(nc, id, upload)
	if _, err := uw.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}

	kill(t, h, id)

	for name, s := range map[string]*lineReader{"process": &sleeper.lineReader, "terminal": &term.lineReader, "watch": &ws.lineReader} {
		var err error
		for err == nil {
			_, err = s.next(t.Context())
		}
		wantCode(t, err, http.StatusServiceUnavailable, "killed")
		t.Logf("%s stream: %v", name, err)
	}
	_ = uw.Close(nil)
	for _, pid := range pids {
		rt.Eventually(t, func() bool { return !rt.ProcessAlive(pid) }, "process %d survived the kill", pid)
	}
	if dirs := w.sandboxDirs(t); len(dirs) != 0 {
		t.Fatalf("sandbox directories left: %v", dirs)
	}
	bustest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if g := envdGoroutines(); g != "" {
			return fmt.Errorf("goroutines left:\n%s", g)
		}
		return nil
	})
}

// envdGoroutines returns the stacks of goroutines that run envd code.
func envdGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out bytes.Buffer
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		for _, mark := range []string{"internal/procs.", "internal/watch.", "internal/upload.", "fsnotify", ".streamProcess", ".streamWatch", "worker.streamFile"} {
			if bytes.Contains(g, []byte(mark)) {
				out.Write(g)
				out.WriteString("\n\n")
				break
			}
		}
	}
	return out.String()
}
