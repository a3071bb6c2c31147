package gateway

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"fleetbox.dev/apiserver/internal/envd"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// envdRoutes serves envd's surface (port 49983): process.Process and filesystem.Filesystem over Connect,
// /files, /envs and /health. The envd package checks the sandbox's access token itself, because /files
// also accepts signed URLs.
func (g *Gateway) envdRoutes() http.Handler {
	return envd.Routes(envd.Deps{Sandboxes: g.Sandboxes, Log: g.Log, Record: recordOf})
}

// envdOnly are the paths that only envd serves.
var envdOnly = []string{"/files", "/envs", "/process.Process/", "/filesystem.Filesystem/"}

func isEnvdPath(p string) bool {
	for _, prefix := range envdOnly {
		if p == prefix || (strings.HasSuffix(prefix, "/") && strings.HasPrefix(p, prefix)) {
			return true
		}
	}
	return false
}

// attributable reports whether an envd request without routing headers carries something that names
// its sandbox: an access token (unique per sandbox) or, for /files, a signed URL.
func attributable(r *http.Request) bool {
	if !isEnvdPath(r.URL.Path) || r.Header.Get(e2b.HeaderSandboxID) != "" || r.Header.Get(e2b.HeaderSandboxPort) != "" {
		return false
	}
	return r.Header.Get(e2b.HeaderAccessToken) != "" || (r.URL.Path == "/files" && r.URL.Query().Get("signature") != "")
}

// attribute finds the live sandbox an envd request without routing headers is for (E2B's fallback
// for clients that send none, such as plain fetches of downloadUrl/uploadUrl): the one whose access token
// the request carries, or whose token signs its /files URL. It scans the live records (the apiserver's
// cached copy of the bucket); SDK traffic carries routing headers and never comes here.
func (g *Gateway) attribute(ctx context.Context, r *http.Request) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	recs, err := g.Sandboxes.Bus.ListRecords(ctx)
	if err != nil {
		return "", err
	}
	token := r.Header.Get(e2b.HeaderAccessToken)
	for _, rec := range recs {
		if !rec.State.Live() || rec.AccessToken == "" {
			continue
		}
		if token != "" {
			if subtle.ConstantTimeCompare([]byte(token), []byte(rec.AccessToken)) == 1 {
				return rec.ID, nil
			}
			continue
		}
		if envd.SignatureMatches(r, rec.AccessToken) {
			return rec.ID, nil
		}
	}
	return "", schema.Errorf(http.StatusUnauthorized, "unauthorized access, please provide a valid access token or method signing if supported")
}
