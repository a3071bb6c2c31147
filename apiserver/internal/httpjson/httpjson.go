// Package httpjson reads request bodies and writes responses in E2B's shapes: strict, bounded JSON
// decoding whose failures are 4xx errors, and the error body {"code": <status>, "message": ...}.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// MaxBody is the largest control-plane request body accepted.
const MaxBody = 1 << 20

// Decode reads one JSON value from r's body (at most maxBytes) into v. An empty body is allowed unless
// required. Every failure is a *schema.Error with a 4xx code and a message that names the problem.
func Decode(w http.ResponseWriter, r *http.Request, maxBytes int64, v any, required bool) error {
	body := http.MaxBytesReader(w, r.Body, maxBytes)
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return schema.Errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", maxBytes)
		}
		return schema.Errorf(http.StatusBadRequest, "read request body: %v", err)
	}
	return Unmarshal(data, v, required)
}

// Unmarshal decodes data like Decode does; it is separate so fuzz tests can reach it without HTTP.
func Unmarshal(data []byte, v any, required bool) error {
	if len(trimSpace(data)) == 0 {
		if required {
			return schema.Errorf(http.StatusBadRequest, "request body is required")
		}
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return schema.Errorf(http.StatusBadRequest, "malformed JSON at byte %d: %v", syn.Offset, err)
		case errors.As(err, &typ):
			field := typ.Field
			if field == "" {
				field = "body"
			}
			return schema.Errorf(http.StatusBadRequest, "field %q must be %s, not %s", field, typ.Type, typ.Value)
		default:
			return schema.Errorf(http.StatusBadRequest, "invalid JSON: %v", err)
		}
	}
	return nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// Write sends v as JSON with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"code":500,"message":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// Error sends err as E2B's error body. Errors that are not *schema.Error are 500s; their detail is
// logged, and the client gets the wrapped message too (it names the failing step, never a secret).
func Error(w http.ResponseWriter, log *slog.Logger, err error) {
	e := AsError(err)
	if e.Code >= 500 && log != nil {
		log.Error("request failed", "status", e.Code, "error", err)
	}
	Write(w, e.Code, e2b.Error{Code: e.Code, Message: e.Message})
}

// AsError is err as E2B's error body: its status (500 unless it is a *schema.Error) and message.
func AsError(err error) *schema.Error {
	var se *schema.Error
	if errors.As(err, &se) {
		return &schema.Error{Code: se.Code, Message: se.Message}
	}
	return &schema.Error{Code: schema.CodeOf(err), Message: err.Error()}
}
