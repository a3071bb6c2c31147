package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

// procEvent is one line of a process stream, decoded as a client of envd would.
type procEvent struct {
	Start *struct {
		PID uint32 `json:"pid"`
	} `json:"start"`
	Data *struct {
		Stdout []byte `json:"stdout"`
		Stderr []byte `json:"stderr"`
		PTY    []byte `json:"pty"`
	} `json:"data"`
	Keepalive *struct{} `json:"keepalive"`
	End       *struct {
		ExitCode int32   `json:"exitCode"`
		Exited   bool    `json:"exited"`
		Status   string  `json:"status"`
		Error    *string `json:"error"`
	} `json:"end"`
	raw string
}

// lineReader splits a byte stream into JSON lines.
type lineReader struct {
	r   *bus.StreamReader
	buf bytes.Buffer
}

// next returns the next line, io.EOF at a clean end, or the stream's error.
func (lr *lineReader) next(ctx context.Context) ([]byte, error) {
	for {
		if i := bytes.IndexByte(lr.buf.Bytes(), '\n'); i >= 0 {
			line := bytes.Clone(lr.buf.Next(i + 1))
			return line[:len(line)-1], nil
		}
		chunk, err := lr.r.Next(ctx)
		if err != nil {
			return nil, err
		}
		lr.buf.Write(chunk)
	}
}

func (lr *lineReader) event(ctx context.Context) (procEvent, error) {
	line, err := lr.next(ctx)
	if err != nil {
		return procEvent{}, err
	}
	var ev procEvent
	if err := json.Unmarshal(line, &ev); err != nil {
		return procEvent{}, fmt.Errorf("line %q: %w", line, err)
	}
	ev.raw = string(line)
	return ev, nil
}

// procStream is a process stream opened as the apiserver opens it: reader first, then the request.
type procStream struct {
	lineReader
	pid uint32
}

func openStream(tb testing.TB, nc *nats.Conn, id string) (string, *bus.StreamReader) {
	tb.Helper()
	stream := schema.NewToken(8)
	r, err := bus.OpenStream(nc, id, stream, 30*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(r.Close)
	return stream, r
}

// startProcess starts a process through the bus; errors come back as returned, the stream is open.
func startProcess(tb testing.TB, nc *nats.Conn, id string, req schema.ProcessStartRequest) (*procStream, error) {
	tb.Helper()
	stream, r := openStream(tb, nc, id)
	req.Stream = stream
	reply, err := bus.Request[schema.ProcessStartReply](tb.Context(), nc, schema.SubjectOp(id, schema.OpProcessStart), req)
	if err != nil {
		return nil, err
	}
	return &procStream{lineReader: lineReader{r: r}, pid: reply.PID}, nil
}

func mustStart(tb testing.TB, nc *nats.Conn, id string, req schema.ProcessStartRequest) *procStream {
	tb.Helper()
	ps, err := startProcess(tb, nc, id, req)
	if err != nil {
		tb.Fatalf("start %s %v: %v", req.Process.Cmd, req.Process.Args, err)
	}
	return ps
}

func connectProcess(tb testing.TB, nc *nats.Conn, id string, sel schema.ProcessSelector) (*procStream, error) {
	tb.Helper()
	stream, r := openStream(tb, nc, id)
	reply, err := bus.Request[schema.ProcessStartReply](tb.Context(), nc, schema.SubjectOp(id, schema.OpProcessConnect),
		schema.ProcessConnectRequest{Stream: stream, Process: sel})
	if err != nil {
		return nil, err
	}
	return &procStream{lineReader: lineReader{r: r}, pid: reply.PID}, nil
}

// result is a whole process stream: its events in order, the output by stream, and how it ended.
type result struct {
	events              []procEvent
	stdout, stderr, pty string
	err                 error // the stream's error, nil after a clean end
}

func (r result) end() *procEvent {
	if n := len(r.events); n > 0 && r.events[n-1].End != nil {
		return &r.events[n-1]
	}
	return nil
}

// wait reads the stream to its end.
func (ps *procStream) wait(ctx context.Context) result {
	var res result
	for {
		ev, err := ps.event(ctx)
		if errors.Is(err, io.EOF) {
			return res
		}
		if err != nil {
			res.err = err
			return res
		}
		if ev.Data != nil {
			res.stdout += string(ev.Data.Stdout)
			res.stderr += string(ev.Data.Stderr)
			res.pty += string(ev.Data.PTY)
		}
		if ev.Keepalive == nil {
			res.events = append(res.events, ev)
		}
	}
}

// readUntil reads pty or stdout data until it contains want, and returns what it read.
func (ps *procStream) readUntil(ctx context.Context, want string) (string, error) {
	var got string
	for !bytes.Contains([]byte(got), []byte(want)) {
		ev, err := ps.event(ctx)
		if err != nil {
			return got, fmt.Errorf("waiting for %q after %q: %w", want, got, err)
		}
		if ev.End != nil {
			return got, fmt.Errorf("process ended waiting for %q after %q: %s", want, got, ev.raw)
		}
		if ev.Data != nil {
			got += string(ev.Data.Stdout) + string(ev.Data.Stderr) + string(ev.Data.PTY)
		}
	}
	return got, nil
}

// op sends one envd operation request and decodes its reply.
func op[Resp any](tb testing.TB, nc *nats.Conn, id, name string, req any) (Resp, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	return bus.Request[Resp](ctx, nc, schema.SubjectOp(id, name), req)
}

// wantCode checks that err is a *schema.Error with code (and, if given, a message containing msg).
func wantCode(tb testing.TB, err error, code int, msg string) {
	tb.Helper()
	var se *schema.Error
	if !errors.As(err, &se) || se.Code != code {
		tb.Fatalf("error %v, want code %d (%s)", err, code, http.StatusText(code))
	}
	if msg != "" && !bytes.Contains([]byte(se.Message), []byte(msg)) {
		tb.Fatalf("error message %q, want it to contain %q", se.Message, msg)
	}
}

func sh(script string) schema.ProcessStartRequest {
	return schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-c", script}}}
}

// run runs a shell script in the sandbox through the bus and returns its result.
func runSh(tb testing.TB, nc *nats.Conn, id, script string) result {
	tb.Helper()
	res := mustStart(tb, nc, id, sh(script)).wait(tb.Context())
	if res.err != nil || res.end() == nil {
		tb.Fatalf("%s: %+v", script, res)
	}
	return res
}
