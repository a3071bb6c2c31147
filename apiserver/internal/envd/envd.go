// Package envd serves E2B's in-sandbox daemon surface (port 49983) on the apiserver: the Connect services
// process.Process and filesystem.Filesystem (connect-go, JSON and binary codecs) and the plain HTTP
// endpoints /files, /envs and /health. Every call is relayed to the sandbox's owner worker through the
// schema's envd operations; streams (process output, directory watches, file contents) travel as bus
// byte streams and are relayed chunk by chunk, so nothing large is held in memory here.
//
// The gateway resolves the sandbox before a request gets here; Deps.Record returns it.
package envd

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/go-chi/chi/v5"

	"fleetbox.dev/apiserver/internal/envd/proto/filesystem/filesystemconnect"
	"fleetbox.dev/apiserver/internal/envd/proto/process/processconnect"
	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// Deps is what the envd surface needs.
type Deps struct {
	Sandboxes *lifecycle.Service
	Log       *slog.Logger
	// Record returns the sandbox the gateway resolved for the request.
	Record func(context.Context) schema.Record
	// Now is the clock for signature expirations (nil: time.Now).
	Now func() time.Time
}

// maxRPCBody bounds a Connect request message (SendInput carries the largest: a chunk of stdin).
const maxRPCBody = 16 << 20

// Routes returns envd's router. Unknown paths are plain-text 404s, as in envd.
func Routes(d Deps) http.Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &service{Deps: d}
	opts := []connect.HandlerOption{
		// Clients read the JSON codec uncompressed; never compress responses, even when asked.
		connect.WithCompression("gzip", nil, nil),
		connect.WithReadMaxBytes(maxRPCBody),
	}
	r := chi.NewRouter()
	r.Use(s.authorize)
	r.Get("/health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	r.Get("/files", s.download)
	r.Post("/files", s.upload)
	r.Get("/envs", s.envs)
	path, h := processconnect.NewProcessHandler(&processService{s}, opts...)
	r.Mount(path, h)
	path, h = filesystemconnect.NewFilesystemHandler(&filesystemService{s}, opts...)
	r.Mount(path, h)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "404 page not found", http.StatusNotFound) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
	})
	return r
}

// service holds what every envd handler shares.
type service struct {
	Deps
}

// authorize enforces the sandbox's access token as envd does (see accessRule).
func (s *service) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := s.Record(r.Context())
		if err := checkAccess(r, rec.AccessToken, s.Now()); err != nil {
			httpjson.Error(w, nil, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// proxyError answers as E2B's sandbox proxy does for a sandbox whose owner is gone: 502 JSON, which the
// SDKs read as "the sandbox was killed or timed out".
func proxyError(w http.ResponseWriter, id string) {
	httpjson.Write(w, http.StatusBadGateway, e2b.ProxyError{SandboxID: id, Message: sandboxGoneMessage, Code: http.StatusBadGateway})
}

// sandboxGoneMessage is the proxy's message for a sandbox that is not there; the Python SDK recognises
// "was not found" in it.
const sandboxGoneMessage = "The sandbox was not found"
