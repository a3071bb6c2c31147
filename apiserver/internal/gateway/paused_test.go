package gateway

import (
	"context"
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

// Traffic to a paused sandbox created with autoResume resumes it (for its creation timeout) and is then
// served; without autoResume it stays a 409.
func TestAutoResumeOnTraffic(t *testing.T) {
	t.Parallel()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{})
	g := New(lifecycle.New(b, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	h := g.Dispatch(http.NotFoundHandler())
	rec := schema.Record{
		ID: schema.NewSandboxID(), State: schema.StatePaused, AccessToken: "tok", AutoResume: true, TimeoutSeconds: 120,
		Worker: "w1", CreatedAt: time.Now(),
	}
	if _, err := b.CreateRecord(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	// The owner resumes as the worker does: the record runs again until the requested end.
	var gotEnd time.Time
	mux := bus.NewMux(10*time.Second, slog.New(slog.DiscardHandler))
	bus.Handle(mux, schema.OpResume, func(ctx context.Context, id string, req schema.ResumeRequest) (schema.Record, error) {
		gotEnd = req.EndAt
		r, _, err := b.UpdateRecord(ctx, id, func(r schema.Record) (schema.Record, error) {
			r, err := r.Transition(schema.StateRunning, "")
			r.EndAt = req.EndAt
			return r, err
		})
		return r, err
	})
	sub, err := mux.Subscribe(b.NC, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	r := httptest.NewRequest("GET", "/health", nil)
	r.Header.Set("E2b-Sandbox-Id", rec.ID)
	r.Header.Set("E2b-Sandbox-Port", "49983")
	r.Header.Set("X-Access-Token", "tok")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code == http.StatusConflict || w.Code >= 500 {
		t.Fatalf("GET /health of an auto-resumable paused sandbox: %d %s", w.Code, w.Body)
	}
	after, _, err := b.GetRecord(t.Context(), rec.ID)
	if err != nil || after.State != schema.StateRunning {
		t.Fatalf("record after traffic: %+v, %v", after, err)
	}
	if d := time.Until(gotEnd); d < 100*time.Second || d > 121*time.Second {
		t.Fatalf("resumed until %v from now, want the creation timeout (120 s)", d)
	}
}
