package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
)

// Error kinds, the categories a report counts errors by. HTTP errors are "http <status>".
const (
	KindTimeout    = "timeout"    // the per-request timeout (or the server's deadline) expired
	KindConnection = "connection" // dial failed, connection refused or reset, the body ended early
	KindProtocol   = "protocol"   // an answer that does not follow the protocol (bad JSON, no end marker, ...)
	KindCodeError  = "code error" // run_code reported an error line for code that should not fail
	KindExitCode   = "exit code"  // the command ended with a non-zero exit code
	KindCanceled   = "canceled"   // the run was stopped (Ctrl-C, end of the run's time budget)
	KindOther      = "other"
)

// Error is a failed operation with its kind.
type Error struct {
	Kind   string
	Op     string // create, run_code, command, kill, list
	Status int    // HTTP status for "http N" kinds
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %s", e.Op, e.Kind, e.Msg) }

// KindOf returns the kind of any error returned by this package.
func KindOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Classify("", err).(*Error).Kind
}

// Classify turns a transport error into an *Error with a kind.
func Classify(op string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	kind := KindOther
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.Is(err, context.Canceled):
		kind = KindCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		kind = KindTimeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		kind = KindConnection
	case errors.As(err, &ne), errors.As(err, &ue):
		kind = KindConnection
	}
	return &Error{Kind: kind, Op: op, Msg: err.Error()}
}
