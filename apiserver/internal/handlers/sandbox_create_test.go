package handlers

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

func ptr[T any](v T) *T { return &v }

func TestValidateCreate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		req         e2b.NewSandbox
		v2          bool
		wantCode    int
		wantMsg     string
		wantTimeout time.Duration
		wantSecure  bool
		wantResume  bool
	}{
		{name: "defaults", req: e2b.NewSandbox{TemplateID: "base"}, wantTimeout: schema.DefaultTimeout, wantSecure: true},
		{name: "insecure v1", req: e2b.NewSandbox{TemplateID: "base", Secure: ptr(false), Timeout: ptr(60)}, wantTimeout: time.Minute},
		{name: "v2 always secure", req: e2b.NewSandbox{TemplateID: "code-interpreter-v1", Secure: ptr(false)}, v2: true, wantTimeout: schema.DefaultTimeout, wantSecure: true},
		{name: "missing template", req: e2b.NewSandbox{}, wantCode: 400, wantMsg: "templateID is required"},
		{name: "snapshot reference", req: e2b.NewSandbox{TemplateID: "my-snapshot"}, wantTimeout: schema.DefaultTimeout, wantSecure: true},
		{name: "huge template reference", req: e2b.NewSandbox{TemplateID: strings.Repeat("x", 300)}, wantCode: 400, wantMsg: "too long"},
		{name: "negative timeout", req: e2b.NewSandbox{TemplateID: "base", Timeout: ptr(-1)}, wantCode: 400, wantMsg: "positive"},
		{name: "zero timeout", req: e2b.NewSandbox{TemplateID: "base", Timeout: ptr(0)}, wantCode: 400, wantMsg: "positive"},
		{name: "huge timeout", req: e2b.NewSandbox{TemplateID: "base", Timeout: ptr(100000)}, wantCode: 400, wantMsg: "maximum"},
		{name: "bad env name", req: e2b.NewSandbox{TemplateID: "base", EnvVars: map[string]string{"A=B": "x"}}, wantCode: 400, wantMsg: "environment variable"},
		{name: "auto-resume", req: e2b.NewSandbox{TemplateID: "base", AutoPause: ptr(true), AutoResume: json.RawMessage(`{"enabled":true}`)}, wantTimeout: schema.DefaultTimeout, wantSecure: true, wantResume: true},
		{name: "auto-resume off", req: e2b.NewSandbox{TemplateID: "base", AutoPause: ptr(true), AutoResume: json.RawMessage(`{"enabled":false}`)}, wantTimeout: schema.DefaultTimeout, wantSecure: true},
		{name: "auto-resume null", req: e2b.NewSandbox{TemplateID: "base", AutoResume: json.RawMessage(`null`)}, wantTimeout: schema.DefaultTimeout, wantSecure: true},
		{name: "auto-resume without auto-pause", req: e2b.NewSandbox{TemplateID: "base", AutoResume: json.RawMessage(`{"enabled":true}`)}, wantCode: 400, wantMsg: "autoPause"},
		{name: "auto-resume not an object", req: e2b.NewSandbox{TemplateID: "base", AutoPause: ptr(true), AutoResume: json.RawMessage(`true`)}, wantCode: 400, wantMsg: "autoResume"},
		{name: "huge metadata", req: e2b.NewSandbox{TemplateID: "base", Metadata: map[string]string{"k": strings.Repeat("x", 70000)}}, wantCode: 400, wantMsg: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := validateCreate(tt.req, tt.v2)
			if tt.wantCode != 0 {
				if schema.CodeOf(err) != tt.wantCode || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("err = %v, want %d %q", err, tt.wantCode, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Timeout != tt.wantTimeout || p.Secure != tt.wantSecure || p.AutoResume != tt.wantResume {
				t.Fatalf("timeout %v secure %v autoResume %v, want %v %v %v", p.Timeout, p.Secure, p.AutoResume, tt.wantTimeout, tt.wantSecure, tt.wantResume)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	// Every route we claim in the README exists; requests without a key are 401 before anything else.
	h := Routes(Deps{APIKeys: []string{"e2b_00"}})
	for _, rt := range []struct{ method, path string }{
		{"POST", "/sandboxes"}, {"POST", "/v2/sandboxes"}, {"GET", "/sandboxes"}, {"GET", "/v2/sandboxes"},
		{"GET", "/sandboxes/abc"}, {"DELETE", "/sandboxes/abc"}, {"POST", "/sandboxes/abc/timeout"},
		{"POST", "/sandboxes/abc/refreshes"}, {"POST", "/sandboxes/abc/connect"}, {"POST", "/v2/sandboxes/abc/connect"},
		{"POST", "/sandboxes/abc/pause"}, {"POST", "/sandboxes/abc/resume"}, {"POST", "/sandboxes/abc/snapshots"},
		{"GET", "/snapshots"}, {"DELETE", "/templates/abc"},
	} {
		rec := newRecorder()
		h.ServeHTTP(rec, newRequest(rt.method, rt.path, ""))
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s %s without key: %d, want 401", rt.method, rt.path, rec.Code)
		}
	}
}
