package envd

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"fleetbox.dev/schema"
)

const testToken = "tok_0123456789abcdef"

// signedURL builds a /files URL as the SDKs' downloadUrl/uploadUrl do.
func signedURL(p, op, user, token string, exp *int64) string {
	q := url.Values{}
	if p != "" {
		q.Set("path", p)
	}
	if user != "" {
		q.Set("username", user)
	}
	q.Set("signature", Signature(p, op, user, token, exp))
	if exp != nil {
		q.Set("signature_expiration", strconv.FormatInt(*exp, 10))
	}
	return "/files?" + q.Encode()
}

func TestSignatureKnownValue(t *testing.T) {
	t.Parallel()
	// sha256("/home/user/a.txt:read::secret"), base64 without padding, as the JS SDK computes it.
	got := Signature("/home/user/a.txt", opRead, "", "secret", nil)
	if want := "v1_HEW7fDvq8wDd0bCgcYpP4vKMGjo6waU8ir2ibcmhKGY"; got != want {
		t.Fatalf("Signature = %q, want %q", got, want)
	}
	exp := int64(1700000000)
	if a, b := Signature("/a", opRead, "", "secret", &exp), Signature("/a", opRead, "", "secret", nil); a == b {
		t.Fatal("the expiration must change the signature")
	}
}

func TestCheckFileAccess(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	future, past := now.Unix()+60, now.Unix()-1
	tests := []struct {
		name     string
		method   string
		url      string
		header   string
		wantCode int // 0: allowed
	}{
		{"valid read", "GET", signedURL("/home/user/a.txt", opRead, "", testToken, nil), "", 0},
		{"valid write", "POST", signedURL("/home/user/a.txt", opWrite, "", testToken, nil), "", 0},
		{"valid with user", "GET", signedURL("a.txt", opRead, "root", testToken, nil), "", 0},
		{"valid, expires later", "GET", signedURL("/a", opRead, "", testToken, &future), "", 0},
		{"expired", "GET", signedURL("/a", opRead, "", testToken, &past), "", 401},
		{"wrong token", "GET", signedURL("/a", opRead, "", "other", nil), "", 401},
		{"read signature used to write", "POST", signedURL("/a", opRead, "", testToken, nil), "", 401},
		{"signature of another path", "GET", "/files?path=/b&signature=" + url.QueryEscape(Signature("/a", opRead, "", testToken, nil)), "", 401},
		{"signature of another user", "GET", "/files?path=/a&username=root&signature=" + url.QueryEscape(Signature("/a", opRead, "", testToken, nil)), "", 401},
		{"missing signature", "GET", "/files?path=/a", "", 401},
		{"header alone", "GET", "/files?path=/a", testToken, 0},
		{"header wins over a bad signature", "GET", "/files?path=/a&signature=v1_bogus", testToken, 0},
		{"wrong header rejected despite a valid signature", "GET", signedURL("/a", opRead, "", testToken, nil), "nope", 401},
		{"expiration not a number", "GET", "/files?path=/a&signature=" + url.QueryEscape(Signature("/a", opRead, "", testToken, nil)) + "&signature_expiration=x", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tt.method, tt.url, nil)
			if tt.header != "" {
				r.Header.Set("X-Access-Token", tt.header)
			}
			err := checkAccess(r, testToken, now)
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("checkAccess = %v, want allowed", err)
				}
				return
			}
			if got := schema.CodeOf(err); err == nil || got != tt.wantCode {
				t.Fatalf("checkAccess = %v, want code %d", err, tt.wantCode)
			}
		})
	}
}

func TestAccessRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, path string
		header       string
		token        string
		wantOK       bool
	}{
		{"GET", "/health", "", testToken, true},
		{"POST", "/health", "", testToken, false},
		{"GET", "/envs", "", testToken, false},
		{"GET", "/envs", testToken, testToken, true},
		{"GET", "/envs", "wrong", testToken, false},
		{"POST", "/process.Process/Start", "", testToken, false},
		{"POST", "/process.Process/Start", testToken, testToken, true},
		{"POST", "/filesystem.Filesystem/Stat", "", testToken, false},
		{"GET", "/files", "", testToken, false}, // no signature either
		{"GET", "/files", testToken, testToken, true},
		{"DELETE", "/files", testToken, testToken, true},
		{"DELETE", "/files", "", testToken, false},
		{"GET", "/unknown", "", testToken, false},
		// A sandbox without a token is open.
		{"POST", "/process.Process/Start", "", "", true},
		{"GET", "/files", "", "", true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		if tt.header != "" {
			r.Header.Set("X-Access-Token", tt.header)
		}
		err := checkAccess(r, tt.token, time.Now())
		if (err == nil) != tt.wantOK {
			t.Errorf("%s %s (header %q, token %q): err = %v, want allowed=%v", tt.method, tt.path, tt.header, tt.token, err, tt.wantOK)
		}
		if err != nil && schema.CodeOf(err) != http.StatusUnauthorized {
			t.Errorf("%s %s: code %d, want 401", tt.method, tt.path, schema.CodeOf(err))
		}
	}
}

func TestRuleFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, path string
		want         accessRule
	}{
		{"GET", "/health", ruleOpen},
		{"GET", "/files", ruleTokenOrSignature},
		{"POST", "/files", ruleTokenOrSignature},
		{"PUT", "/files", ruleToken},
		{"GET", "/files/compose", ruleToken},
		{"GET", "/envs", ruleToken},
		{"POST", "/process.Process/List", ruleToken},
	}
	for _, tt := range tests {
		if got := ruleFor(tt.method, tt.path); got != tt.want {
			t.Errorf("ruleFor(%s %s) = %v, want %v", tt.method, tt.path, got, tt.want)
		}
	}
}
