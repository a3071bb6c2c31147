package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/apiserver/internal/envd"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
)

// TestEnvdWithoutRoutingHeaders checks E2B's fallback for envd requests that name no sandbox: a signed
// /files URL (downloadUrl/uploadUrl fetched as is) or an access token finds its sandbox; anything else
// stays a 400 or 401.
func TestEnvdWithoutRoutingHeaders(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{})
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	g := New(lifecycle.New(b, log), log)
	srv := httptest.NewServer(g.Dispatch(http.NotFoundHandler()))
	defer srv.Close()
	if _, err := b.CreateRecord(ctx, schema.Record{ID: schema.NewSandboxID(), State: schema.StateRunning, AccessToken: "other-token"}); err != nil {
		t.Fatal(err)
	}
	// Each case gets its own sandbox: reaching one without a worker marks it gone.
	newSandbox := func() string {
		tok := schema.NewToken(20)
		if _, err := b.CreateRecord(ctx, schema.Record{ID: schema.NewSandboxID(), State: schema.StateRunning, AccessToken: tok}); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	sign := func(op, p, tok string) string {
		return url.QueryEscape(envd.Signature(p, op, "", tok, nil))
	}
	tests := []struct {
		name   string
		method string
		path   func(tok string) string
		header func(tok string) string
		want   int
	}{
		// No worker serves the sandbox in this test, so reaching it ends in the proxy's 502.
		{"signed download", "GET", func(tok string) string { return "/files?path=%2Fa&signature=" + sign("read", "/a", tok) }, nil, http.StatusBadGateway},
		{"signed upload", "POST", func(tok string) string { return "/files?path=%2Fa&signature=" + sign("write", "/a", tok) }, nil, http.StatusBadGateway},
		{"token header", "GET", func(string) string { return "/envs" }, func(tok string) string { return tok }, http.StatusBadGateway},
		{"unknown signature", "GET", func(string) string { return "/files?path=%2Fa&signature=" + sign("read", "/a", "nobody") }, nil, http.StatusUnauthorized},
		{"unknown token", "POST", func(string) string { return "/process.Process/List" }, func(string) string { return "nobody" }, http.StatusUnauthorized},
		{"nothing", "GET", func(string) string { return "/files?path=%2Fa" }, nil, http.StatusBadRequest},
	}
	for _, tt := range tests {
		tok := newSandbox()
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path(tok), strings.NewReader("x"))
		req.Header.Set("Content-Type", "application/octet-stream")
		if tt.header != nil {
			req.Header.Set("X-Access-Token", tt.header(tok))
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, res.StatusCode, body, tt.want)
		}
	}
}
