package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"fleetbox.dev/loadtest/internal/e2btest"
)

func TestReadExecution(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantText string
		wantKind string
	}{
		{"result", `{"type":"number_of_executions","execution_count":1}
{"type":"result","text":"2","is_main_result":true}
{"type": "end_of_execution"}
`, "2", ""},
		{"stdout and unknown types", `{"type":"stdout","text":"hi\n","timestamp":"x"}
{"type":"keepalive"}
{"type":"something_new"}

{"type":"end_of_execution"}`, "", ""},
		{"code error", `{"type":"error","name":"NameError","value":"x","traceback":""}
{"type":"end_of_execution"}
`, "", KindCodeError},
		{"no end", `{"type":"result","text":"2","is_main_result":true}
`, "2", KindProtocol},
		{"not json", "oops\n", "", KindProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex, err := readExecution(strings.NewReader(tt.body))
			if KindOf(err) != tt.wantKind {
				t.Fatalf("error %v (kind %q), want kind %q", err, KindOf(err), tt.wantKind)
			}
			if ex.Text != tt.wantText {
				t.Errorf("text %q, want %q", ex.Text, tt.wantText)
			}
		})
	}
}

func env(flags byte, s string) []byte { return Envelope(flags, []byte(s)) }

func TestReadProcessStream(t *testing.T) {
	start := env(0, `{"event":{"start":{"pid":7}}}`)
	data := env(0, `{"event":{"data":{"stdout":"aGkK"}}}`)
	keep := env(0, `{"event":{"keepalive":{}}}`)
	end0 := env(0, `{"event":{"end":{"exited":true,"status":"exit status 0"}}}`)
	end2 := env(0, `{"event":{"end":{"exitCode":2,"exited":true,"status":"exit status 2","error":"exit status 2"}}}`)
	fin := env(2, `{}`)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name     string
		stream   []byte
		wantKind string
		wantOut  string
	}{
		{"ok", cat(start, data, keep, end0, fin), "", "hi\n"},
		{"exit code", cat(start, end2, fin), KindExitCode, ""},
		{"end-stream error", cat(env(2, `{"error":{"code":"invalid_argument","message":"cwd '/x' does not exist"}}`)), "connect invalid_argument", ""},
		{"no start", cat(data, end0, fin), KindProtocol, ""},
		{"no end event", cat(start, fin), KindProtocol, ""},
		{"no end-stream", cat(start, end0), KindProtocol, ""},
		{"truncated envelope", cat(start, end0[:7]), KindConnection, ""},
		{"compressed", cat(env(1, `{}`)), KindProtocol, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := readProcessStream(bytes.NewReader(tt.stream))
			if KindOf(err) != tt.wantKind {
				t.Fatalf("error %v (kind %q), want kind %q", err, KindOf(err), tt.wantKind)
			}
			if string(res.Stdout) != tt.wantOut {
				t.Errorf("stdout %q, want %q", res.Stdout, tt.wantOut)
			}
		})
	}
}

func TestEnvelope(t *testing.T) {
	got := Envelope(2, []byte("{}"))
	if !bytes.Equal(got, []byte{2, 0, 0, 0, 2, '{', '}'}) {
		t.Errorf("Envelope = %v", got)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{context.Canceled, KindCanceled},
		{context.DeadlineExceeded, KindTimeout},
		{&url.Error{Op: "Post", URL: "x", Err: syscall.ECONNREFUSED}, KindConnection},
		{io.ErrUnexpectedEOF, KindConnection},
		{&Error{Kind: "http 502"}, "http 502"},
		{errors.New("strange"), KindOther},
	}
	for _, tt := range tests {
		if got := KindOf(tt.err); got != tt.want {
			t.Errorf("KindOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestEncodeMetadata(t *testing.T) {
	if got := EncodeMetadata(map[string]string{"loadtest": "run 1&x"}); got != "loadtest=run+1%26x" {
		t.Errorf("EncodeMetadata = %q", got)
	}
	if EncodeMetadata(nil) != "" {
		t.Error("empty metadata should encode to nothing")
	}
}

func TestTransportSizedForConcurrency(t *testing.T) {
	tr := NewTransport(500)
	if tr.MaxIdleConnsPerHost < 500 || tr.MaxIdleConns < 500 || tr.DisableKeepAlives || !tr.DisableCompression {
		t.Errorf("transport not tuned: %+v", tr)
	}
}

func TestClientAgainstFake(t *testing.T) {
	srv := e2btest.New()
	defer srv.Close()
	c := New(srv.URL+"/", srv.URL, e2btest.Key, 5*time.Second, 4)
	ctx := t.Context()
	sb, err := c.Create(ctx, CreateOptions{Template: "base", Timeout: 60, Metadata: map[string]string{"loadtest": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if sb.EnvdAccessToken == "" {
		t.Error("create did not ask for a secured sandbox")
	}
	if ex, err := c.RunCode(ctx, sb, "1+1"); err != nil || ex.Text != "2" {
		t.Errorf("RunCode = %+v, %v", ex, err)
	}
	if res, err := c.RunCommand(ctx, sb, "true"); err != nil || res.PID != 42 || string(res.Stdout) != "ok\n" {
		t.Errorf("RunCommand = %+v, %v", res, err)
	}
	if got, err := c.List(ctx, map[string]string{"loadtest": "x"}, 10); err != nil || len(got) != 1 || got[0].SandboxID != sb.SandboxID {
		t.Errorf("List = %+v, %v", got, err)
	}
	if err := c.Kill(ctx, sb.SandboxID); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(ctx, sb.SandboxID); KindOf(err) != "http 404" {
		t.Errorf("second kill: %v, want http 404", err)
	}
	if _, err := c.RunCode(ctx, sb, "1+1"); KindOf(err) != "http 502" {
		t.Errorf("run_code in a killed sandbox: %v, want http 502", err)
	}
	bad := *c
	bad.APIKey = "e2b_00"
	if _, err := bad.Create(ctx, CreateOptions{Template: "base"}); KindOf(err) != "http 401" {
		t.Errorf("bad key: %v", err)
	}
	var e *Error
	if _, err := bad.Create(ctx, CreateOptions{Template: "base"}); !errors.As(err, &e) || e.Msg != "bad key" {
		t.Errorf("the error body's message was not kept: %v", err)
	}
}

func TestPerRequestTimeoutKind(t *testing.T) {
	srv := e2btest.New()
	defer srv.Close()
	srv.CreateDelay = 200 * time.Millisecond
	c := New(srv.URL, srv.URL, e2btest.Key, 20*time.Millisecond, 1)
	if _, err := c.Create(t.Context(), CreateOptions{Template: "base"}); KindOf(err) != KindTimeout {
		t.Errorf("a create slower than -timeout gave %v, want kind timeout", err)
	}
}
