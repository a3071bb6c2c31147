package envd

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// Signing operations of /files URLs.
const (
	opRead  = "read"
	opWrite = "write"
)

// errUnauthorized is envd's answer to a request without a valid access token.
var errUnauthorized = schema.Errorf(http.StatusUnauthorized, "unauthorized access, please provide a valid access token or method signing if supported")

// accessRule says how a request to envd is authenticated when the sandbox has an access token.
type accessRule int

const (
	// ruleToken: X-Access-Token must be the sandbox's token.
	ruleToken accessRule = iota
	// ruleOpen: no credential (the health check).
	ruleOpen
	// ruleTokenOrSignature: the token header, or without it a valid signature of the URL (/files).
	ruleTokenOrSignature
)

// ruleFor returns the access rule of a request, as envd applies them: GET /health is open, GET and POST
// /files accept a signed URL instead of the header, everything else (unknown paths included) needs the
// header.
func ruleFor(method, path string) accessRule {
	switch {
	case method == http.MethodGet && path == "/health":
		return ruleOpen
	case (method == http.MethodGet || method == http.MethodPost) && path == "/files":
		return ruleTokenOrSignature
	}
	return ruleToken
}

// checkAccess authenticates r against the sandbox's access token (none: every request passes).
func checkAccess(r *http.Request, token string, now time.Time) error {
	if token == "" {
		return nil
	}
	switch ruleFor(r.Method, r.URL.Path) {
	case ruleOpen:
		return nil
	case ruleTokenOrSignature:
		return checkFileAccess(r, token, now)
	}
	if !equal(r.Header.Get(e2b.HeaderAccessToken), token) {
		return errUnauthorized
	}
	return nil
}

// checkFileAccess authenticates a /files request: a token header must be right (a wrong one is rejected
// even when the URL is signed); without one the URL's signature must match and must not have expired.
func checkFileAccess(r *http.Request, token string, now time.Time) error {
	if h := r.Header.Get(e2b.HeaderAccessToken); h != "" {
		if !equal(h, token) {
			return schema.Errorf(http.StatusUnauthorized, "access token present in header but does not match")
		}
		return nil
	}
	q := r.URL.Query()
	if !q.Has("signature") {
		return schema.Errorf(http.StatusUnauthorized, "missing signature query parameter")
	}
	if !signatureMatches(r, token) {
		return schema.Errorf(http.StatusUnauthorized, "invalid signature")
	}
	if exp := q.Get("signature_expiration"); exp != "" {
		// signatureMatches already parsed it.
		if n, _ := strconv.ParseInt(exp, 10, 64); n < now.Unix() {
			return schema.Errorf(http.StatusUnauthorized, "signature is already expired")
		}
	}
	return nil
}

// SignatureMatches reports whether r's signature query parameter signs its /files URL with token; it
// does not check the expiration. The gateway uses it to find the sandbox of a signed URL that came
// without routing headers.
func SignatureMatches(r *http.Request, token string) bool { return signatureMatches(r, token) }

func signatureMatches(r *http.Request, token string) bool {
	q := r.URL.Query()
	sig := q.Get("signature")
	if sig == "" || token == "" {
		return false
	}
	var exp *int64
	if v := q.Get("signature_expiration"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return false
		}
		exp = &n
	}
	op := opRead
	if r.Method == http.MethodPost {
		op = opWrite
	}
	return equal(sig, Signature(q.Get("path"), op, q.Get("username"), token, exp))
}

// Signature is envd's signature of a /files URL: "v1_" + unpadded standard base64 of
// SHA-256("<path>:<operation>:<username>:<token>[:<expiration>]"), operation "read" or "write", username
// "" for the default user.
func Signature(path, operation, username, token string, expiration *int64) string {
	parts := []string{path, operation, username, token}
	if expiration != nil {
		parts = append(parts, strconv.FormatInt(*expiration, 10))
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, ":")))
	return "v1_" + base64.RawStdEncoding.EncodeToString(sum[:])
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
