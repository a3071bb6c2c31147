package executor

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestRealRunsAndReportsExit(t *testing.T) {
	out, err := Real{}.Run(t.Context(), []string{"sh", "-c", "cat; echo out"}, []byte("in\n"))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "in\nout\n" {
		t.Errorf("stdout = %q", out)
	}
	_, err = Real{}.Run(t.Context(), []string{"sh", "-c", "echo bad >&2; exit 3"}, nil)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || strings.TrimSpace(ee.Stderr) != "bad" || ExitCode(err) != 3 {
		t.Fatalf("err = %v, want exit 3 with stderr bad", err)
	}
	if !strings.Contains(err.Error(), "sh -c") || !strings.Contains(err.Error(), "bad") {
		t.Errorf("error text %q lacks argv or stderr", err)
	}
}

func TestRealContextAndMissing(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := (Real{}).Run(ctx, []string{"sleep", "10"}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if _, err := (Real{}).Run(t.Context(), []string{"/nonexistent/fleetbox-cmd"}, nil); err == nil || ExitCode(err) != -1 {
		t.Errorf("missing program: err = %v", err)
	}
	if _, err := (Real{}).Run(t.Context(), nil, nil); err == nil {
		t.Error("empty argv: no error")
	}
}

func TestRecorderScript(t *testing.T) {
	r := (&Recorder{}).
		On("zfs list", Result{Stdout: "a\n"}).
		Fail("zfs", "no zfs").
		Once("jls", Result{Stdout: "first"})
	ctx := t.Context()
	if out, err := r.Run(ctx, []string{"zfs", "list", "-H"}, nil); err != nil || string(out) != "a\n" {
		t.Errorf("zfs list = %q, %v", out, err)
	}
	if _, err := r.Run(ctx, []string{"zfs", "clone", "x"}, []byte("in")); ExitCode(err) != 1 {
		t.Errorf("zfs clone err = %v", err)
	}
	if out, _ := r.Run(ctx, []string{"jls"}, nil); string(out) != "first" {
		t.Errorf("jls first = %q", out)
	}
	if out, err := r.Run(ctx, []string{"jls"}, nil); err != nil || len(out) != 0 {
		t.Errorf("jls second = %q, %v", out, err)
	}
	r.On("zfs list", Result{Stdout: "b\n"}) // the later rule of the same prefix wins
	if out, _ := r.Run(ctx, []string{"zfs", "list"}, nil); string(out) != "b\n" {
		t.Errorf("overridden zfs list = %q", out)
	}
	want := []string{"zfs list -H", "zfs clone x", "jls", "jls", "zfs list"}
	if got := r.Lines(); !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
	if c := r.Calls()[1]; c.Stdin != "in" {
		t.Errorf("stdin = %q", c.Stdin)
	}
	r.Reset()
	if len(r.Calls()) != 0 {
		t.Error("Reset kept calls")
	}
}

func TestRealPipe(t *testing.T) {
	t.Parallel()
	out, err := Real{}.Pipe(t.Context(), []string{"printf", "a\\nb\\n"}, []string{"sort", "-r"})
	if err != nil || string(out) != "b\na\n" {
		t.Fatalf("pipe = %q, %v", out, err)
	}
	tests := []struct {
		name     string
		from, to []string
		wantCode int
		wantMsg  string
	}{
		{"receiver fails", []string{"echo", "x"}, []string{"sh", "-c", "cat >/dev/null; echo recv-bad >&2; exit 4"}, 4, "recv-bad"},
		{"sender fails", []string{"sh", "-c", "echo send-bad >&2; exit 5"}, []string{"cat"}, 5, "send-bad"},
		// The receiver exits first without reading: the sender dies of the broken pipe, and the receiver's
		// failure is the one reported first.
		{"receiver exits early", []string{"yes"}, []string{"sh", "-c", "exit 6"}, 6, "exit status 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Real{}.Pipe(t.Context(), tt.from, tt.to)
			if ExitCode(err) != tt.wantCode || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want exit %d mentioning %q", err, tt.wantCode, tt.wantMsg)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := (Real{}).Pipe(ctx, []string{"yes"}, []string{"cat"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if _, err := (Real{}).Pipe(t.Context(), []string{"true"}, nil); err == nil {
		t.Error("empty argv: no error")
	}
	if _, err := (Real{}).Pipe(t.Context(), []string{"/nonexistent/fleetbox-cmd"}, []string{"cat"}); err == nil || ExitCode(err) != -1 {
		t.Errorf("missing sender: err = %v", err)
	}
}

func TestRecorderPipe(t *testing.T) {
	t.Parallel()
	r := (&Recorder{}).On("zfs recv", Result{Stdout: "received"})
	ctx := t.Context()
	if out, err := r.Pipe(ctx, []string{"zfs", "send", "a@s"}, []string{"zfs", "recv", "b"}); err != nil || string(out) != "received" {
		t.Fatalf("pipe = %q, %v", out, err)
	}
	r.Once("zfs send", Result{Err: &ExitError{Code: 2}})
	if _, err := r.Pipe(ctx, []string{"zfs", "send", "a@s"}, []string{"zfs", "recv", "b"}); ExitCode(err) != 2 {
		t.Errorf("failing sender: %v", err)
	}
	r.Once("zfs send", Result{Err: &ExitError{Code: 2}}).Once("zfs recv", Result{Err: &ExitError{Code: 3}})
	if _, err := r.Pipe(ctx, []string{"zfs", "send", "a@s"}, []string{"zfs", "recv", "b"}); ExitCode(err) != 3 {
		t.Errorf("both failing: %v, want the receiver's exit 3", err)
	}
	want := []string{"zfs send a@s | zfs recv b", "zfs send a@s | zfs recv b", "zfs send a@s | zfs recv b"}
	if got := r.Lines(); !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
	if c := r.Calls()[0]; !slices.Equal(c.To, []string{"zfs", "recv", "b"}) {
		t.Errorf("call = %+v", c)
	}
}
