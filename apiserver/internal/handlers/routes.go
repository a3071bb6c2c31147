// Package handlers serves E2B's control-plane REST API: one file per endpoint group, each decoding and
// validating the request, calling the lifecycle layer, and mapping errors to E2B's error body.
package handlers

import (
	"crypto/subtle"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// Deps is what the control-plane handlers need.
type Deps struct {
	Sandboxes *lifecycle.Service
	Log       *slog.Logger
	// APIKeys are the accepted X-API-KEY values.
	APIKeys []string
	// Ready reports whether the apiserver can serve (NATS connected); nil error means ready.
	Ready func() error
}

// Routes returns the control-plane router. Every route but /health requires an API key.
func Routes(d Deps) chi.Router {
	r := chi.NewRouter()
	r.Get("/health", d.health)
	r.Group(func(r chi.Router) {
		r.Use(d.requireAPIKey)
		r.Post("/sandboxes", d.createSandbox(false))
		r.Post("/v2/sandboxes", d.createSandbox(true))
		r.Get("/sandboxes", d.listSandboxesV1)
		r.Get("/v2/sandboxes", d.listSandboxesV2)
		r.Get("/sandboxes/metrics", d.sandboxesMetrics)
		r.Get("/sandboxes/{sandboxID}", d.getSandbox)
		r.Get("/sandboxes/{sandboxID}/metrics", d.sandboxMetrics)
		r.Delete("/sandboxes/{sandboxID}", d.killSandbox)
		r.Post("/sandboxes/{sandboxID}/timeout", d.setTimeout)
		r.Post("/sandboxes/{sandboxID}/refreshes", d.refresh)
		r.Post("/sandboxes/{sandboxID}/connect", d.connectSandbox(false))
		r.Post("/v2/sandboxes/{sandboxID}/connect", d.connectSandbox(true))
		r.Post("/sandboxes/{sandboxID}/pause", d.pauseSandbox)
		r.Put("/sandboxes/{sandboxID}/network", d.setNetwork)
		r.Post("/sandboxes/{sandboxID}/resume", d.resumeSandbox)
		r.Post("/sandboxes/{sandboxID}/snapshots", d.createSnapshot)
		r.Post("/sandboxes/{sandboxID}/fork", d.forkSandbox)
		r.Get("/snapshots", d.listSnapshots)
		r.Delete("/templates/{templateID}", d.deleteTemplate)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpjson.Error(w, nil, schema.Errorf(http.StatusNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		httpjson.Error(w, nil, schema.Errorf(http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path))
	})
	return r
}

func (d Deps) requireAPIKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(e2b.HeaderAPIKey)
		if key == "" {
			httpjson.Error(w, nil, schema.Errorf(http.StatusUnauthorized, "missing X-API-KEY header"))
			return
		}
		for _, k := range d.APIKeys {
			if subtle.ConstantTimeCompare([]byte(key), []byte(k)) == 1 {
				next.ServeHTTP(w, r)
				return
			}
		}
		httpjson.Error(w, nil, schema.Errorf(http.StatusUnauthorized, "invalid API key"))
	})
}

func (d Deps) health(w http.ResponseWriter, r *http.Request) {
	if d.Ready != nil {
		if err := d.Ready(); err != nil {
			httpjson.Error(w, nil, schema.Errorf(http.StatusServiceUnavailable, "not ready: %v", err))
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(e2b.HealthMessage))
}

// sandboxID reads and validates the {sandboxID} path parameter.
func sandboxID(r *http.Request) (string, error) {
	id := chi.URLParam(r, "sandboxID")
	if !schema.ValidSandboxID(id) {
		return "", schema.Errorf(http.StatusBadRequest, "invalid sandbox id %q", id)
	}
	return id, nil
}
