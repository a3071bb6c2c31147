package worker_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

func TestExecute(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)

	t.Run("state persists", func(t *testing.T) {
		h.run(t, id, "", "x = 41")
		lines := h.run(t, id, "", "x + 1")
		if res, _, _ := summary(lines); res != "42" {
			t.Fatalf("result %q: %v", res, lines)
		}
		if lines[0].typ() != "number_of_executions" {
			t.Fatalf("first line %v", lines[0])
		}
	})
	t.Run("5 MB print arrives complete", func(t *testing.T) {
		_, out, _ := summary(h.run(t, id, "", "print('ab' * 2_500_000)"))
		if len(out) != 5_000_001 || strings.Trim(out, "ab\n") != "" || !strings.HasPrefix(out, "abab") {
			t.Fatalf("stdout of %d bytes", len(out))
		}
	})
	t.Run("code error is a line", func(t *testing.T) {
		if _, _, name := summary(h.run(t, id, "", "undefined_name")); name != "NameError" {
			t.Fatalf("error %q", name)
		}
	})
	t.Run("language python", func(t *testing.T) {
		lines, err := execute(t.Context(), h.bus.NC, id, schema.ExecuteRequest{Code: "x", Language: "python"})
		if res, _, _ := summary(lines); err != nil || res != "41" {
			t.Fatalf("result %q, %v", res, err)
		}
	})
	t.Run("env vars for one execution", func(t *testing.T) {
		req := schema.ExecuteRequest{Code: "import os; print(os.environ.get('ONCE'))", EnvVars: map[string]string{"ONCE": `a"b'c`}}
		lines, err := execute(t.Context(), h.bus.NC, id, req)
		if _, out, _ := summary(lines); err != nil || out != "a\"b'c\n" {
			t.Fatalf("stdout %q, %v", out, err)
		}
		if _, out, _ := summary(h.run(t, id, "", req.Code)); out != "None\n" {
			t.Fatalf("env var outlived its execution: %q", out)
		}
	})
}

func TestExecuteErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	tests := []struct {
		name     string
		req      schema.ExecuteRequest
		wantCode int
		wantMsg  string
	}{
		{"context and language", schema.ExecuteRequest{Code: "1", ContextID: "abc", Language: "python"}, http.StatusBadRequest, "Only one of context_id or language can be provided"},
		{"unsupported language", schema.ExecuteRequest{Code: "1", Language: "r"}, http.StatusBadRequest, `"r"`},
		{"unknown context", schema.ExecuteRequest{Code: "1", ContextID: "nope"}, http.StatusNotFound, "Context nope not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := execute(t.Context(), h.bus.NC, id, tt.req)
			var se *schema.Error
			if !errors.As(err, &se) || se.Code != tt.wantCode || !strings.Contains(se.Message, tt.wantMsg) {
				t.Fatalf("got %v, want %d %q", err, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

// A reader that goes away mid-execution interrupts the code; the context then serves the next execution.
func TestExecuteReaderCloseInterrupts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	h.run(t, id, "", "n = 1")

	stream := schema.NewToken(8)
	r, err := bus.OpenStream(h.bus.NC, id, stream, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req := schema.ExecuteRequest{Stream: stream, Code: "print('spinning', flush=True)\nwhile True: pass"}
	if _, err := bus.Request[schema.Empty](t.Context(), h.bus.NC, schema.SubjectOp(id, schema.OpExecute), req); err != nil {
		t.Fatal(err)
	}
	var seen string
	for !strings.Contains(seen, "spinning") {
		chunk, err := r.Next(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		seen += string(chunk)
	}
	r.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	lines, err := execute(ctx, h.bus.NC, id, schema.ExecuteRequest{Code: "n + 1"})
	if res, _, _ := summary(lines); err != nil || res != "2" {
		t.Fatalf("after interrupt: %q, %v", res, err)
	}
}

// OpInterrupt stops a running execution; its stream still ends normally.
func TestExecuteInterruptOp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	stream := schema.NewToken(8)
	r, err := bus.OpenStream(h.bus.NC, id, stream, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	req := schema.ExecuteRequest{Stream: stream, Code: "import time\nprint('go', flush=True)\ntime.sleep(1000)"}
	if _, err := bus.Request[schema.Empty](t.Context(), h.bus.NC, schema.SubjectOp(id, schema.OpExecute), req); err != nil {
		t.Fatal(err)
	}
	var all string
	interrupted := false
	for {
		chunk, err := r.Next(t.Context())
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatal(err)
		}
		all += string(chunk)
		if !interrupted && strings.Contains(all, "go") {
			interrupted = true
			if _, err := bus.Request[schema.Empty](t.Context(), h.bus.NC, schema.SubjectOp(id, schema.OpInterrupt), schema.InterruptRequest{Stream: stream}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !strings.Contains(all, "KeyboardInterrupt") || !strings.HasSuffix(strings.TrimSpace(all), `"end_of_execution"}`) {
		t.Fatalf("stream: %s", all)
	}
}

// Executions in one context queue behind each other; many at once all complete.
func TestExecuteConcurrent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	errs := make(chan error, 10)
	for i := range 10 {
		go func() {
			lines, err := execute(t.Context(), h.bus.NC, id, schema.ExecuteRequest{Code: strconv.Itoa(i) + " * 2"})
			if res, _, _ := summary(lines); err == nil && res != strconv.Itoa(i*2) {
				err = errors.New("wrong result " + res)
			}
			errs <- err
		}()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
