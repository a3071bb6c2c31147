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
