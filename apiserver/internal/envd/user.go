package envd

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// runAsUser returns the user an RPC runs as, from `Authorization: Basic base64("<user>:")`. No header
// means the sandbox's default user (""). A header that is not such a user is unauthenticated, as in envd.
func runAsUser(h http.Header) (string, error) {
	v := h.Get("Authorization")
	if v == "" {
		return "", nil
	}
	scheme, cred, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", connect.NewError(connect.CodeUnauthenticated, errors.New("invalid authorization header: want Basic <base64 of user:>"))
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", connect.NewError(connect.CodeUnauthenticated, errors.New("invalid authorization header: not base64"))
	}
	user, _, _ := strings.Cut(string(raw), ":")
	if user == "" {
		return "", connect.NewError(connect.CodeUnauthenticated, errors.New("invalid username: ''"))
	}
	return user, nil
}
