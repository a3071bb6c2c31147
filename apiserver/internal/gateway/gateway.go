// Package gateway is the data plane on the apiserver's single origin: it recognises requests meant for a
// sandbox (E2b-Sandbox-Id/E2b-Sandbox-Port headers, or a <port>-<id>.<domain> Host), checks the sandbox's
// access token, and serves the code interpreter (port 49999) and envd (port 49983) by relaying to the
// sandbox's owner worker over the bus: NDJSON and WebSocket streams for run_code, request/reply for the rest.
package gateway

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// Gateway routes data-plane requests to sandboxes.
type Gateway struct {
	Sandboxes *lifecycle.Service
	Log       *slog.Logger

	codeInterpreter http.Handler
	envd            http.Handler
}

// New returns a Gateway serving the code interpreter and envd surfaces.
func New(s *lifecycle.Service, log *slog.Logger) *Gateway {
	g := &Gateway{Sandboxes: s, Log: log}
	g.codeInterpreter = g.codeInterpreterRoutes()
	g.envd = g.envdRoutes()
	return g
}

// hostPattern matches E2B's sandbox hosts: <port>-<sandboxID>.<domain>.
var hostPattern = regexp.MustCompile(`^(\d+)-([a-z0-9]+)\.`)

// dataPlaneOnly are paths that exist only on the data plane: requests for them without routing headers
// are data-plane requests whose sandbox must be named some other way.
var dataPlaneOnly = []string{"/execute", "/contexts", "/process.Process/", "/filesystem.Filesystem/", "/files", "/envs"}

// Dispatch sends data-plane requests to the gateway and everything else to control.
func (g *Gateway) Dispatch(control http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, port, ok, err := target(r)
		if err != nil && attributable(r) {
			port, ok = schema.EnvdPort, true
			id, err = g.attribute(r.Context(), r)
		}
		if err != nil {
			httpjson.Error(w, g.Log, err)
			return
		}
		if !ok {
			control.ServeHTTP(w, r)
			return
		}
		g.serveSandbox(w, r, id, port)
	})
}

// target finds which sandbox and port a request is for; ok is false for control-plane requests.
func target(r *http.Request) (id string, port int, ok bool, err error) {
	hid, hport := r.Header.Get(e2b.HeaderSandboxID), r.Header.Get(e2b.HeaderSandboxPort)
	switch {
	case hid != "" || hport != "":
		if hid == "" || hport == "" {
			return "", 0, false, schema.Errorf(http.StatusBadRequest, "missing header: both %s and %s are required", e2b.HeaderSandboxID, e2b.HeaderSandboxPort)
		}
		id, port = hid, 0
	case hostPattern.MatchString(r.Host):
		m := hostPattern.FindStringSubmatch(r.Host)
		id, hport = m[2], m[1]
	case r.URL.Path == "/execute/ws" && r.URL.Query().Get("sandboxId") != "":
		id, hport = r.URL.Query().Get("sandboxId"), strconv.Itoa(schema.CodeInterpreterPort)
	default:
		for _, p := range dataPlaneOnly {
			if r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/") || (strings.HasSuffix(p, "/") && strings.HasPrefix(r.URL.Path, p)) {
				return "", 0, false, schema.Errorf(http.StatusBadRequest, "%s is a sandbox path: send the %s and %s headers", r.URL.Path, e2b.HeaderSandboxID, e2b.HeaderSandboxPort)
			}
		}
		return "", 0, false, nil
	}
	if !schema.ValidSandboxID(id) {
		return "", 0, false, schema.Errorf(http.StatusBadRequest, "Invalid sandbox ID %q", id)
	}
	port, perr := strconv.Atoi(hport)
	if perr != nil || port < 1 || port > 65535 {
		return "", 0, false, schema.Errorf(http.StatusBadRequest, "Invalid sandbox port %q", hport)
	}
	return id, port, true, nil
}

type recordKey struct{}

// recordOf returns the sandbox record the gateway resolved for this request.
func recordOf(ctx context.Context) schema.Record {
	r, _ := ctx.Value(recordKey{}).(schema.Record)
	return r
}

func (g *Gateway) serveSandbox(w http.ResponseWriter, r *http.Request, id string, port int) {
	rec, _, err := g.Sandboxes.Bus.GetRecord(r.Context(), id)
	if err != nil && !errors.Is(err, schema.ErrNotFound) {
		httpjson.Error(w, g.Log, err)
		return
	}
	if err == nil && rec.State == schema.StatePaused {
		if !rec.AutoResume {
			pausedError(w, id, false)
			return
		}
		// Traffic wakes a sandbox created with autoResume, as E2B's proxy does.
		if rec, err = g.Sandboxes.AutoResume(r.Context(), rec); err != nil {
			g.Log.Warn("auto-resume failed", "sandbox_id", id, "error", err)
			pausedError(w, id, true)
			return
		}
	}
	if err != nil || rec.State != schema.StateRunning {
		proxyError(w, id, 0, "The sandbox was not found")
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), recordKey{}, rec))
	switch port {
	case schema.CodeInterpreterPort:
		g.codeInterpreter.ServeHTTP(w, r)
	case schema.EnvdPort:
		g.envd.ServeHTTP(w, r)
	default:
		proxyError(w, id, port, "The sandbox is running but port is not open")
	}
}

// proxyError answers as E2B's sandbox proxy does for a sandbox (or port) it cannot reach: 502 JSON.
func proxyError(w http.ResponseWriter, id string, port int, msg string) {
	body := map[string]any{"sandboxId": id, "message": msg, "code": http.StatusBadGateway}
	if port != 0 {
		body["port"] = port
	}
	httpjson.Write(w, http.StatusBadGateway, body)
}

// pausedError answers as E2B's sandbox proxy does for a paused sandbox: 409 JSON. Connecting to the
// sandbox (Sandbox.connect) resumes it; on the data plane only traffic to a sandbox created with
// autoResume does (canAutoResume: its resume was tried and failed).
func pausedError(w http.ResponseWriter, id string, canAutoResume bool) {
	httpjson.Write(w, http.StatusConflict, map[string]any{
		"sandboxId": id, "message": "The sandbox is paused", "code": http.StatusConflict, "canAutoResume": canAutoResume,
	})
}

// checkToken enforces the sandbox's access token, sent as X-Access-Token (or accessToken in the query
// of WebSocket requests, which browsers cannot give headers).
func checkToken(r *http.Request, rec schema.Record) error {
	if rec.AccessToken == "" {
		return nil
	}
	got := r.Header.Get(e2b.HeaderAccessToken)
	if got == "" {
		got = r.URL.Query().Get("accessToken")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(rec.AccessToken)) != 1 {
		return schema.Errorf(http.StatusUnauthorized, "unauthorized access, please provide a valid access token or method signing if supported")
	}
	return nil
}
