package worker_test

import (
	"net/http"
	"strings"
	"testing"

	"fleetbox.dev/schema"
)

func TestPTY(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC

	ps := mustStart(t, nc, id, schema.ProcessStartRequest{
		Process: schema.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-i"}, Envs: map[string]string{"TERM": "xterm-256color", "PS1": "$ "}},
		PTY:     &schema.PTYSize{Cols: 80, Rows: 24},
	})
	sel := schema.ProcessSelector{PID: ps.pid}
	send := func(s string) {
		t.Helper()
		if _, err := op[schema.Empty](t, nc, id, schema.OpProcessInput, schema.ProcessInputRequest{Process: sel, PTY: []byte(s)}); err != nil {
			t.Fatal(err)
		}
	}
	send("echo hi-$((40+2))\n")
	if got, err := ps.readUntil(t.Context(), "hi-42"); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(got, "echo hi-$((40+2))") {
		t.Fatalf("terminal did not echo the input: %q", got)
	}
	send("stty size\n")
	if _, err := ps.readUntil(t.Context(), "24 80"); err != nil {
		t.Fatal(err)
	}
	if _, err := op[schema.Empty](t, nc, id, schema.OpProcessUpdate, schema.ProcessUpdateRequest{Process: sel, PTY: &schema.PTYSize{Cols: 120, Rows: 40}}); err != nil {
		t.Fatal(err)
	}
	send("stty size\n")
	if _, err := ps.readUntil(t.Context(), "40 120"); err != nil {
		t.Fatal(err)
	}

	_, err := op[schema.Empty](t, nc, id, schema.OpProcessCloseStdin, schema.ProcessRequest{Process: sel})
	wantCode(t, err, http.StatusBadRequest, "Ctrl-D")
	_, err = op[schema.Empty](t, nc, id, schema.OpProcessInput, schema.ProcessInputRequest{Process: sel, Stdin: []byte("x")})
	wantCode(t, err, http.StatusBadRequest, "")

	send("exit 5\n")
	res := ps.wait(t.Context())
	if end := res.end(); res.err != nil || end == nil || end.End.ExitCode != 5 {
		t.Fatalf("bash did not exit 5: %+v", res)
	}

	t.Run("Ctrl-D ends a shell", func(t *testing.T) {
		ps := mustStart(t, nc, id, schema.ProcessStartRequest{
			Process: schema.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-i"}}, PTY: &schema.PTYSize{Cols: 80, Rows: 24},
		})
		if _, err := op[schema.Empty](t, nc, id, schema.OpProcessInput, schema.ProcessInputRequest{Process: schema.ProcessSelector{PID: ps.pid}, PTY: []byte{4}}); err != nil {
			t.Fatal(err)
		}
		res := ps.wait(t.Context())
		if end := res.end(); res.err != nil || end == nil || end.End.ExitCode != 0 {
			t.Fatalf("sh did not end on Ctrl-D: %+v", res)
		}
		for _, ev := range res.events {
			if ev.Data != nil && (len(ev.Data.Stdout) > 0 || len(ev.Data.Stderr) > 0) {
				t.Fatalf("terminal output as stdout/stderr: %s", ev.raw)
			}
		}
	})
	t.Run("resize without a terminal", func(t *testing.T) {
		ps := mustStart(t, nc, id, schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "sleep", Args: []string{"100"}}})
		_, err := op[schema.Empty](t, nc, id, schema.OpProcessUpdate, schema.ProcessUpdateRequest{Process: schema.ProcessSelector{PID: ps.pid}, PTY: &schema.PTYSize{Cols: 1, Rows: 1}})
		wantCode(t, err, http.StatusBadRequest, "terminal")
	})
}
