package gateway

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// envdRoutes serves envd's surface (port 49983). For now: its health check, which the SDKs use for
// isRunning() and after a dropped connection. Unknown paths are plain-text 404s, as in envd.
func (g *Gateway) envdRoutes() http.Handler {
	r := chi.NewRouter()
	r.Get("/health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "404 page not found", http.StatusNotFound) })
	return r
}
