package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/worker/internal/agent"
)

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-listen", "127.0.0.1:0", "-log-level", "debug"}, t.Output(), func(a net.Addr) { addrc <- a })
	}()
	var addr string
	select {
	case a := <-addrc:
		addr = a.String()
	case err := <-done:
		t.Fatal(err)
	}
	var out bytes.Buffer
	st, err := agent.Run(t.Context(), addr, agent.Header{Argv: []string{"/bin/sh", "-c", "echo hi"}}, nil, &out, io.Discard)
	if err != nil || st.Code != 0 || out.String() != "hi\n" {
		t.Fatalf("%v %v %q", st, err, out.String())
	}
	// A process still running when the agent stops is killed, and run returns.
	p, err := agent.Start(context.Background(), addr, agent.Header{Argv: []string{"/bin/sleep", "1000"}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := p.Wait(); !errors.Is(err, agent.ErrConnectionLost) {
		t.Fatalf("Wait: %v", err)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"serve", "extra"}, {"serve", "-bad"}} {
		if err := run(t.Context(), args, io.Discard, nil); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v", args, err)
		}
	}
	if err := run(t.Context(), []string{"serve", "-log-level", "loud"}, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "-log-level") {
		t.Errorf("bad level: %v", err)
	}
	if err := run(t.Context(), []string{"serve", "-listen", "256.0.0.1:1"}, io.Discard, nil); err == nil {
		t.Error("bad address accepted")
	}
}

// The agent is copied into guest images: it must build from the standard library and this module's
// agent package alone (no cgo, no third-party code).
func TestStandardLibraryOnly(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the dependencies with")
	}
	cmd := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".")
	cmd.Env = append(cmd.Environ(), "GOOS=freebsd", "GOARCH=amd64", "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(out))
	want := []string{"fleetbox.dev/worker/internal/agent", "fleetbox.dev/worker/cmd/sbx-agent"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("non-standard dependencies %q, want only %q", got, want)
	}
}
