package httpjson

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		body     string
		required bool
		wantCode int
		wantMsg  string
	}{
		{"ok", `{"templateID":"base","timeout":10}`, true, 0, ""},
		{"unknown fields are accepted", `{"templateID":"base","iam":{}}`, true, 0, ""},
		{"empty required", ``, true, 400, "required"},
		{"empty optional", `  `, false, 0, ""},
		{"malformed", `{"templateID":`, true, 400, "malformed JSON"},
		{"wrong type", `{"timeout":"x"}`, true, 400, `"timeout" must be int`},
		{"trailing garbage", `{"templateID":"base"} x`, true, 400, ""},
		{"array instead of object", `[1]`, true, 400, "must be"},
		{"too big", `{"templateID":"` + strings.Repeat("a", MaxBody) + `"}`, true, 413, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "/sandboxes", strings.NewReader(tt.body))
			var v e2b.NewSandbox
			err := Decode(httptest.NewRecorder(), r, MaxBody, &v, tt.required)
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if got := schema.CodeOf(err); got != tt.wantCode {
				t.Fatalf("code = %d (%v), want %d", got, err, tt.wantCode)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("message %q lacks %q", err, tt.wantMsg)
			}
		})
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{`{"templateID":"base"}`, `{"code":"1+1","env_vars":{"a":"b"}}`, `{"timeout":-1}`, `[`, `null`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a e2b.NewSandbox
		if err := Unmarshal(data, &a, true); err != nil && schema.CodeOf(err) != http.StatusBadRequest {
			t.Fatalf("decode error with code %d: %v", schema.CodeOf(err), err)
		}
		var b e2b.ExecuteRequest
		if err := Unmarshal(data, &b, true); err != nil && schema.CodeOf(err) != http.StatusBadRequest {
			t.Fatalf("decode error with code %d: %v", schema.CodeOf(err), err)
		}
	})
}
