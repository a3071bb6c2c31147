package schema

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is the one error shape that crosses the bus and reaches clients. Code is an HTTP status; the
// apiserver renders it as E2B's body {"code": Code, "message": Message}.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

// Is makes errors.Is(err, ErrNotFound) true for any *Error with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code && t.Message == ""
}

// Sentinels for errors.Is; their empty message matches any message of the same code.
var (
	ErrNotFound = &Error{Code: http.StatusNotFound}
	ErrConflict = &Error{Code: http.StatusConflict}
)

// Errorf builds an *Error with an HTTP status code.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the HTTP status an error maps to: its own code for an *Error, 500 otherwise.
func CodeOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return http.StatusInternalServerError
}
