package worker_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime/runtimetest"
)

func TestProcessStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC

	tests := []struct {
		name                   string
		req                    schema.ProcessStartRequest
		stdout, stderr         string // substrings (stdout "" = empty)
		exitCode               int32
		status, errText        string
		wantEnd                map[string]any // the end event exactly as protojson would write it
		checkStdout, checkJSON bool
	}{
		{
			name:   "echo hi",
			req:    schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "echo", Args: []string{"hi"}}},
			stdout: "hi\n", status: "exit status 0", checkStdout: true,
			wantEnd: map[string]any{"exited": true, "status": "exit status 0"},
		},
		{
			name:   "non-zero exit",
			req:    sh("echo out; echo err >&2; exit 3"),
			stdout: "out\n", stderr: "err\n", exitCode: 3, status: "exit status 3", errText: "exit status 3", checkStdout: true,
			wantEnd: map[string]any{"exitCode": float64(3), "exited": true, "status": "exit status 3", "error": "exit status 3"},
		},
		{
			name:   "missing binary still starts",
			req:    schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "no-such-program-anywhere"}},
			stderr: "no-such-program-anywhere", exitCode: 127, status: "exit status 127", errText: "exit status 127",
		},
		{
			name: "env, home and cwd",
			req: schema.ProcessStartRequest{Process: schema.ProcessConfig{
				Cmd: "/bin/sh", Args: []string{"-c", `echo "$GREETING $ONE $USER"; pwd; echo "$HOME"`},
				Envs: map[string]string{"ONE": "1"}, Cwd: "/tmp",
			}},
			stdout: "hello 1 user\n", status: "exit status 0",
		},
		{
			name:   "root",
			req:    schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-c", `echo "$USER"; pwd`}}, User: "root"},
			stdout: "root\n", status: "exit status 0",
		},
		{
			name:   "relative cwd from home",
			req:    schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "pwd", Cwd: "."}},
			stdout: "/home/user\n", status: "exit status 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ps := mustStart(t, nc, id, tt.req)
			res := ps.wait(t.Context())
			if res.err != nil {
				t.Fatalf("stream error %v: %+v", res.err, res.events)
			}
			if len(res.events) < 2 || res.events[0].Start == nil || res.events[0].Start.PID != ps.pid {
				t.Fatalf("first event is not start with pid %d: %+v", ps.pid, res.events)
			}
			end := res.end()
			if end == nil {
				t.Fatalf("no end event: %+v", res.events)
			}
			for _, ev := range res.events[1 : len(res.events)-1] {
				if ev.Data == nil {
					t.Fatalf("unexpected event between start and end: %s", ev.raw)
				}
			}
			if end.End.ExitCode != tt.exitCode || end.End.Status != tt.status || !end.End.Exited {
				t.Fatalf("end %s", end.raw)
			}
			if got := ""; end.End.Error != nil {
				got = *end.End.Error
				if got != tt.errText {
					t.Fatalf("end error %q, want %q", got, tt.errText)
				}
			} else if tt.errText != "" {
				t.Fatalf("end without error: %s", end.raw)
			}
			if !strings.Contains(res.stdout, tt.stdout) || (tt.checkStdout && res.stdout != tt.stdout) {
				t.Fatalf("stdout %q, want %q", res.stdout, tt.stdout)
			}
			if !strings.Contains(res.stderr, tt.stderr) {
				t.Fatalf("stderr %q, want %q", res.stderr, tt.stderr)
			}
			if tt.wantEnd != nil {
				var raw struct {
					End map[string]any `json:"end"`
				}
				if err := json.Unmarshal([]byte(end.raw), &raw); err != nil {
					t.Fatal(err)
				}
				if len(raw.End) != len(tt.wantEnd) {
					t.Fatalf("end %s, want %v", end.raw, tt.wantEnd)
				}
				for k, v := range tt.wantEnd {
					if raw.End[k] != v {
						t.Fatalf("end %s, want %v", end.raw, tt.wantEnd)
					}
				}
			}
		})
	}
	t.Run("home and cwd are the sandbox's", func(t *testing.T) {
		t.Parallel()
		res := runSh(t, nc, id, `pwd; echo "$HOME"`)
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if len(lines) != 2 || !strings.HasSuffix(lines[0], "/home/user") || lines[0] != lines[1] || lines[0] == "/home/user" {
			t.Fatalf("pwd and HOME %q: want the sandbox's /home/user on the host", lines)
		}
	})
}

// Output comes in chunks of at most 32 KiB, in order, complete.
func TestProcessLargeOutput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	ps := mustStart(t, h.bus.NC, id, sh("seq 1 200000"))
	res := ps.wait(t.Context())
	if res.err != nil || res.end() == nil {
		t.Fatalf("%v %+v", res.err, res.end())
	}
	for _, ev := range res.events {
		if ev.Data != nil && len(ev.Data.Stdout) > 32<<10 {
			t.Fatalf("chunk of %d bytes", len(ev.Data.Stdout))
		}
	}
	var want strings.Builder
	for i := 1; i <= 200000; i++ {
		want.WriteString(strconv.Itoa(i))
		want.WriteByte('\n')
	}
	if res.stdout != want.String() {
		t.Fatalf("stdout of %d bytes differs from seq's %d", len(res.stdout), want.Len())
	}
}

func TestProcessStartErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	tests := []struct {
		name string
		req  schema.ProcessStartRequest
		code int
		msg  string
	}{
		{"missing cwd", schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "true", Cwd: "/home/user/nope"}}, http.StatusBadRequest, "cwd '/home/user/nope' does not exist"},
		{"relative missing cwd", schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "true", Cwd: "nope"}}, http.StatusBadRequest, "cwd '/home/user/nope' does not exist"},
		{"cwd outside the sandbox", schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "true", Cwd: "../../../../etc"}}, http.StatusBadRequest, "leaves the sandbox"},
		{"unknown user", schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "true"}, User: "mallory"}, http.StatusUnauthorized, "invalid username: 'mallory'"},
		{"no command", schema.ProcessStartRequest{}, http.StatusBadRequest, "cmd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := startProcess(t, h.bus.NC, id, tt.req)
			wantCode(t, err, tt.code, tt.msg)
		})
	}
}

func TestProcessStdin(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC

	t.Run("input and close", func(t *testing.T) {
		t.Parallel()
		ps := mustStart(t, nc, id, schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "cat"}, Stdin: true})
		sel := schema.ProcessSelector{PID: ps.pid}
		for _, s := range []string{"abc", "def\n"} {
			if _, err := op[schema.Empty](t, nc, id, schema.OpProcessInput, schema.ProcessInputRequest{Process: sel, Stdin: []byte(s)}); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := ps.readUntil(t.Context(), "abcdef\n"); err != nil {
			t.Fatal(got, err)
		}
		if _, err := op[schema.Empty](t, nc, id, schema.OpProcessCloseStdin, schema.ProcessRequest{Process: sel}); err != nil {
			t.Fatal(err)
		}
		res := ps.wait(t.Context())
		if end := res.end(); end == nil || end.End.ExitCode != 0 || res.err != nil {
			t.Fatalf("cat did not end cleanly: %+v", res)
		}
	})
	t.Run("no stdin", func(t *testing.T) {
		t.Parallel()
		ps := mustStart(t, nc, id, schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "sleep", Args: []string{"100"}}})
		sel := schema.ProcessSelector{PID: ps.pid}
		_, err := op[schema.Empty](t, nc, id, schema.OpProcessInput, schema.ProcessInputRequest{Process: sel, Stdin: []byte("x")})
		wantCode(t, err, http.StatusInternalServerError, "stdin")
		if _, err := op[schema.Empty](t, nc, id, schema.OpProcessSignal, schema.ProcessSignalRequest{Process: sel, Signal: 9}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stdin is /dev/null without a pipe", func(t *testing.T) {
		t.Parallel()
		if res := runSh(t, nc, id, "cat; echo done"); res.stdout != "done\n" {
			t.Fatalf("stdout %q", res.stdout)
		}
	})
}

// A process without a timeout outlives its stream; Connect then sees only what comes after it.
func TestProcessBackgroundAndConnect(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC

	ps := mustStart(t, nc, id, schema.ProcessStartRequest{
		Process: schema.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-c", "echo before; exec cat"}}, Stdin: true, Tag: "bg",
	})
	if _, err := ps.readUntil(t.Context(), "before\n"); err != nil {
		t.Fatal(err)
	}
	ps.r.Close() // the client goes away
	sel := schema.ProcessSelector{PID: ps.pid}
	input := func(s string) {
		t.Helper()
		if _, err := op[schema.Empty](t, nc, id, schema.OpProcessInput, schema.ProcessInputRequest{Process: sel, Stdin: []byte(s)}); err != nil {
			t.Fatal(err)
		}
	}
	input("while nobody listens\n")
	list, err := op[[]schema.ProcessInfo](t, nc, id, schema.OpProcessList, schema.Empty{})
	if err != nil || !slices.ContainsFunc(list, func(p schema.ProcessInfo) bool { return p.PID == ps.pid && p.Tag == "bg" }) {
		t.Fatalf("process gone with its reader: %+v %v", list, err)
	}

	// Two watchers at once, one by pid and one by tag.
	c1, err := connectProcess(t, nc, id, sel)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := connectProcess(t, nc, id, schema.ProcessSelector{Tag: "bg"})
	if err != nil || c1.pid != ps.pid || c2.pid != ps.pid {
		t.Fatalf("connect: %v, pids %d %d", err, c1.pid, c2.pid)
	}
	input("after\n")
	if _, err := op[schema.Empty](t, nc, id, schema.OpProcessCloseStdin, schema.ProcessRequest{Process: sel}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*procStream{c1, c2} {
		res := c.wait(t.Context())
		if res.err != nil || res.events[0].Start == nil || res.events[0].Start.PID != ps.pid || res.end() == nil {
			t.Fatalf("connected stream: %+v", res)
		}
		if strings.Contains(res.stdout, "before") || !strings.HasSuffix(res.stdout, "after\n") {
			t.Fatalf("connected stream saw %q: want only new output", res.stdout)
		}
	}

	// An exited process is remembered: start + end.
	late, err := connectProcess(t, nc, id, sel)
	if err != nil {
		t.Fatal(err)
	}
	res := late.wait(t.Context())
	if res.err != nil || len(res.events) != 2 || res.events[0].Start == nil || res.events[1].End == nil {
		t.Fatalf("connect to exited process: %+v", res)
	}
	_, err = connectProcess(t, nc, id, schema.ProcessSelector{PID: 1 << 30})
	wantCode(t, err, http.StatusNotFound, "process with pid")
}

func TestProcessSignalAndList(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC

	a := mustStart(t, nc, id, schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "sleep", Args: []string{"100"}, Cwd: "/tmp"}, Tag: "a"})
	// A shell with a child: a signal reaches the whole group.
	b := mustStart(t, nc, id, sh("sleep 100; echo never"))
	list, err := op[[]schema.ProcessInfo](t, nc, id, schema.OpProcessList, schema.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	want := []schema.ProcessInfo{
		{PID: a.pid, Tag: "a", Config: schema.ProcessConfig{Cmd: "sleep", Args: []string{"100"}, Cwd: "/tmp"}},
		{PID: b.pid, Config: sh("sleep 100; echo never").Process},
	}
	slices.SortFunc(want, func(x, y schema.ProcessInfo) int { return int(x.PID) - int(y.PID) })
	if len(list) != 2 || list[0].PID != want[0].PID || list[1].PID != want[1].PID ||
		list[0].Tag != want[0].Tag || list[0].Config.Cmd != want[0].Config.Cmd || !slices.Equal(list[1].Config.Args, want[1].Config.Args) {
		t.Fatalf("list %+v, want %+v", list, want)
	}

	for _, tt := range []struct {
		ps     *procStream
		signal int
		status string
	}{{a, 9, "signal: killed"}, {b, 15, "signal: terminated"}} {
		if _, err := op[schema.Empty](t, nc, id, schema.OpProcessSignal, schema.ProcessSignalRequest{Process: schema.ProcessSelector{PID: tt.ps.pid}, Signal: tt.signal}); err != nil {
			t.Fatal(err)
		}
		res := tt.ps.wait(t.Context())
		end := res.end()
		if end == nil || end.End.ExitCode != -1 || end.End.Exited || end.End.Status != tt.status || end.End.Error == nil || *end.End.Error != tt.status {
			t.Fatalf("end after signal %d: %+v", tt.signal, res)
		}
		if strings.Contains(res.stdout, "never") {
			t.Fatal("the shell's child outlived the group signal")
		}
		_, err := op[schema.Empty](t, nc, id, schema.OpProcessSignal, schema.ProcessSignalRequest{Process: schema.ProcessSelector{PID: tt.ps.pid}, Signal: 9})
		wantCode(t, err, http.StatusNotFound, "")
	}
	list, err = op[[]schema.ProcessInfo](t, nc, id, schema.OpProcessList, schema.Empty{})
	if err != nil || len(list) != 0 {
		t.Fatalf("list after kills: %+v %v", list, err)
	}
	_, err = op[schema.Empty](t, nc, id, schema.OpProcessSignal, schema.ProcessSignalRequest{Process: schema.ProcessSelector{PID: 1 << 30}, Signal: 9})
	wantCode(t, err, http.StatusNotFound, "")
	_, err = op[schema.Empty](t, nc, id, schema.OpProcessSignal, schema.ProcessSignalRequest{Process: schema.ProcessSelector{PID: a.pid}, Signal: 2})
	wantCode(t, err, http.StatusBadRequest, "signal")
}

// A timeout is the process's lifetime: it is killed, and its stream ends with a 504 and no end event.
func TestProcessTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC
	ps := mustStart(t, nc, id, schema.ProcessStartRequest{
		Process: schema.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-c", "echo $$; sleep 100"}}, Timeout: 300 * time.Millisecond,
	})
	res := ps.wait(t.Context())
	wantCode(t, res.err, http.StatusGatewayTimeout, "")
	if res.end() != nil || res.stdout == "" {
		t.Fatalf("timed out stream: %+v", res)
	}
	list, err := op[[]schema.ProcessInfo](t, nc, id, schema.OpProcessList, schema.Empty{})
	if err != nil || len(list) != 0 {
		t.Fatalf("list after timeout: %+v %v", list, err)
	}
	if runtimetest.ProcessAlive(int(ps.pid)) {
		t.Fatalf("process %d survived its timeout", ps.pid)
	}
}
