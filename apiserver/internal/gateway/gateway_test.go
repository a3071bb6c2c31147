package gateway

import (
	"net/http/httptest"
	"testing"

	"fleetbox.dev/schema"
)

func TestTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		path     string
		host     string
		headers  map[string]string
		wantID   string
		wantPort int
		wantOK   bool
		wantCode int
	}{
		{name: "control plane", path: "/sandboxes", wantOK: false},
		{name: "headers", path: "/execute", headers: map[string]string{"E2b-Sandbox-Id": "abc", "E2b-Sandbox-Port": "49999"}, wantID: "abc", wantPort: 49999, wantOK: true},
		{name: "host", path: "/health", host: "49983-abc123.example.com", wantID: "abc123", wantPort: 49983, wantOK: true},
		{name: "ws query", path: "/execute/ws?sandboxId=abc", wantID: "abc", wantPort: 49999, wantOK: true},
		{name: "one header", path: "/execute", headers: map[string]string{"E2b-Sandbox-Id": "abc"}, wantCode: 400},
		{name: "bad id", path: "/execute", headers: map[string]string{"E2b-Sandbox-Id": "AB-C", "E2b-Sandbox-Port": "49999"}, wantCode: 400},
		{name: "bad port", path: "/execute", headers: map[string]string{"E2b-Sandbox-Id": "abc", "E2b-Sandbox-Port": "x"}, wantCode: 400},
		{name: "sandbox path without headers", path: "/execute", wantCode: 400},
		{name: "envd rpc without headers", path: "/process.Process/Start", wantCode: 400},
		{name: "control health", path: "/health", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", tt.path, nil)
			if tt.host != "" {
				r.Host = tt.host
			}
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			id, port, ok, err := target(r)
			if tt.wantCode != 0 {
				if schema.CodeOf(err) != tt.wantCode {
					t.Fatalf("err = %v, want code %d", err, tt.wantCode)
				}
				return
			}
			if err != nil || ok != tt.wantOK || id != tt.wantID || port != tt.wantPort {
				t.Fatalf("target = %q %d %v %v; want %q %d %v", id, port, ok, err, tt.wantID, tt.wantPort, tt.wantOK)
			}
		})
	}
}
