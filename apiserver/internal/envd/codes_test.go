package envd

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

func TestConnectCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		want   connect.Code
	}{
		{400, connect.CodeInvalidArgument},
		{401, connect.CodeUnauthenticated},
		{403, connect.CodePermissionDenied},
		{404, connect.CodeNotFound},
		{409, connect.CodeAlreadyExists},
		{412, connect.CodeFailedPrecondition},
		{429, connect.CodeResourceExhausted},
		{499, connect.CodeCanceled},
		{500, connect.CodeInternal},
		{501, connect.CodeUnimplemented},
		{502, connect.CodeUnavailable},
		{503, connect.CodeUnavailable},
		{504, connect.CodeDeadlineExceeded},
		{418, connect.CodeUnknown},
		{507, connect.CodeUnknown},
	}
	for _, tt := range tests {
		if got := connectCode(tt.status); got != tt.want {
			t.Errorf("connectCode(%d) = %v, want %v", tt.status, got, tt.want)
		}
	}
}

func TestRPCError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		err     error
		want    connect.Code
		wantMsg string
	}{
		{"schema error keeps its message", fmt.Errorf("request: %w", schema.Errorf(http.StatusNotFound, "path '/x' does not exist")), connect.CodeNotFound, "path '/x' does not exist"},
		{"bad cwd", schema.Errorf(http.StatusBadRequest, "cwd '/nope' does not exist"), connect.CodeInvalidArgument, "cwd '/nope' does not exist"},
		{"owner gone", fmt.Errorf("request sbx.op.x: %w", bus.ErrNoOwner), connect.CodeUnavailable, "the sandbox was not found: no worker serves it any more"},
		{"stream idle", bus.ErrStreamIdle, connect.CodeUnavailable, ""},
		{"deadline", context.DeadlineExceeded, connect.CodeDeadlineExceeded, ""},
		{"canceled", context.Canceled, connect.CodeCanceled, ""},
		{"connect error passes", connect.NewError(connect.CodeAborted, errors.New("x")), connect.CodeAborted, "x"},
		{"anything else", errors.New("boom"), connect.CodeInternal, "boom"},
	}
	for _, tt := range tests {
		var ce *connect.Error
		if !errors.As(rpcError(tt.err), &ce) {
			t.Errorf("%s: rpcError(%v) is not a *connect.Error", tt.name, tt.err)
			continue
		}
		if ce.Code() != tt.want || (tt.wantMsg != "" && ce.Message() != tt.wantMsg) {
			t.Errorf("%s: got %v %q, want %v %q", tt.name, ce.Code(), ce.Message(), tt.want, tt.wantMsg)
		}
	}
	if rpcError(nil) != nil {
		t.Error("rpcError(nil) != nil")
	}
}

func TestRunAsUser(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		header   string
		want     string
		wantCode connect.Code // 0: no error
	}{
		{"", "", 0},
		{"Basic " + b64("root:"), "root", 0},
		{"basic " + b64("user:"), "user", 0},
		{"Basic " + b64("user"), "user", 0},
		{"Basic " + b64(":"), "", connect.CodeUnauthenticated},
		{"Basic !!!", "", connect.CodeUnauthenticated},
		{"Bearer abc", "", connect.CodeUnauthenticated},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Authorization", tt.header)
		}
		got, err := runAsUser(h)
		if tt.wantCode != 0 {
			if connect.CodeOf(err) != tt.wantCode {
				t.Errorf("runAsUser(%q) err = %v, want %v", tt.header, err, tt.wantCode)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("runAsUser(%q) = %q, %v; want %q", tt.header, got, err, tt.want)
		}
	}
}

func TestDownloadEncoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		accept   []string
		want     string
		wantCode int
	}{
		{nil, "", 0},
		{[]string{"gzip, deflate, br"}, "", 0}, // what Node's fetch sends: identity stays acceptable
		{[]string{"gzip"}, "", 0},
		{[]string{"identity"}, "", 0},
		{[]string{"identity;q=0, gzip"}, "gzip", 0},
		{[]string{"*;q=0, gzip;q=0.5"}, "gzip", 0},
		{[]string{"*;q=0"}, "", http.StatusNotAcceptable},
		{[]string{"identity;q=0", "br"}, "", http.StatusNotAcceptable},
		{[]string{"identity;q=0, *"}, "gzip", 0},
	}
	for _, tt := range tests {
		got, err := downloadEncoding(tt.accept)
		if tt.wantCode != 0 {
			if schema.CodeOf(err) != tt.wantCode || err == nil {
				t.Errorf("downloadEncoding(%q) err = %v, want %d", tt.accept, err, tt.wantCode)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("downloadEncoding(%q) = %q, %v; want %q", tt.accept, got, err, tt.want)
		}
	}
}
