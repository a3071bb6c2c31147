package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
)

// A paused sandbox's data plane answers as E2B's proxy does: 409 JSON naming it, on every port and path,
// without asking its worker; a sandbox that is gone stays a 502.
func TestPausedSandboxDataPlane(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{})
	g := New(lifecycle.New(b, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	h := g.Dispatch(http.NotFoundHandler())
	put := func(state schema.State) string {
		rec := schema.Record{ID: schema.NewSandboxID(), State: state, AccessToken: "tok", CreatedAt: time.Now()}
		if _, err := b.CreateRecord(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		return rec.ID
	}
	paused, killed := put(schema.StatePaused), put(schema.StateKilled)
	for _, tt := range []struct {
		id, port, method, path string
		wantCode               int
	}{
		{paused, "49999", "POST", "/execute", 409},
		{paused, "49999", "GET", "/contexts", 409},
		{paused, "49983", "GET", "/health", 409},
		{paused, "49983", "POST", "/process.Process/Start", 409},
		{paused, "49983", "GET", "/files?path=/x", 409},
		{killed, "49983", "GET", "/health", 502},
	} {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		r.Header.Set("E2b-Sandbox-Id", tt.id)
		r.Header.Set("E2b-Sandbox-Port", tt.port)
		r.Header.Set("X-Access-Token", "tok")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var body struct {
			SandboxID string `json:"sandboxId"`
			Code      int    `json:"code"`
			Message   string `json:"message"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != tt.wantCode || body.Code != tt.wantCode ||
			body.SandboxID != tt.id || body.Message == "" {
			t.Errorf("%s %s on %s: %d %s, want %d JSON naming the sandbox", tt.method, tt.path, tt.port, w.Code, w.Body, tt.wantCode)
		}
	}
}
