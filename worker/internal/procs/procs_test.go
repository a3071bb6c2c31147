package procs

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"testing"

	"fleetbox.dev/schema"
)

// Lines are envd's ProcessEvent as protojson writes it: zero values left out, bytes in base64.
func TestLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ev   Event
		want string
	}{
		{Event{Kind: KindStart, PID: 42}, `{"start":{"pid":42}}`},
		{Event{Kind: KindData, Stream: Stdout, Data: []byte("hi\n")}, `{"data":{"stdout":"aGkK"}}`},
		{Event{Kind: KindData, Stream: Stderr, Data: []byte("x")}, `{"data":{"stderr":"eA=="}}`},
		{Event{Kind: KindData, Stream: PTY, Data: []byte{0}}, `{"data":{"pty":"AA=="}}`},
		{Event{Kind: KindEnd, End: &End{Exited: true, Status: "exit status 0"}}, `{"end":{"exited":true,"status":"exit status 0"}}`},
		{Event{Kind: KindEnd, End: &End{ExitCode: 2, Exited: true, Status: "exit status 2", Error: "exit status 2"}}, `{"end":{"exitCode":2,"exited":true,"status":"exit status 2","error":"exit status 2"}}`},
		{Event{Kind: KindEnd, End: &End{ExitCode: -1, Status: "signal: killed", Error: "signal: killed", Reason: ReasonClosed}}, `{"end":{"exitCode":-1,"status":"signal: killed","error":"signal: killed"}}`},
	}
	for _, tt := range tests {
		if got := string(tt.ev.Line()); got != tt.want+"\n" {
			t.Errorf("Line() = %s, want %s", got, tt.want)
		}
	}
	var v map[string]any
	if err := json.Unmarshal(KeepaliveLine, &v); err != nil || len(v) != 1 {
		t.Fatalf("keepalive line %q: %v", KeepaliveLine, err)
	}
}

// The table remembers the last keepExited processes that ended, for Connect.
func TestExitedRing(t *testing.T) {
	t.Parallel()
	tab := New(nil)
	var pids []uint32
	for range keepExited + 3 {
		p, sub, err := tab.Start(exec.Command("true"), Options{Config: schema.ProcessConfig{Cmd: "true"}})
		if err != nil {
			t.Fatal(err)
		}
		sub.Close()
		<-p.Done()
		pids = append(pids, p.PID())
	}
	for i, pid := range pids {
		_, err := tab.Find(schema.ProcessSelector{PID: pid})
		if forgotten := i < 3; forgotten != errors.Is(err, ErrNotFound) {
			t.Fatalf("process %d (#%d): %v", pid, i, err)
		}
	}
	if err := tab.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tab.Start(exec.Command("true"), Options{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("start after close: %v", err)
	}
}

// A subscriber that stops reading does not hold the process up once it leaves.
func TestSlowSubscriberLeaves(t *testing.T) {
	t.Parallel()
	tab := New(nil)
	p, sub, err := tab.Start(exec.Command("sh", "-c", "head -c 8000000 /dev/zero"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	<-sub.Events() // start
	sub.Close()
	<-p.Done()
	if end := p.End(); end == nil || end.ExitCode != 0 {
		t.Fatalf("end %+v", end)
	}
}
