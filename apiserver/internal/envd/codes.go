package envd

import (
	"context"
	"errors"
	"net/http"

	"connectrpc.com/connect"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

// connectCode maps the HTTP status of a *schema.Error to the Connect code envd would answer with. This is
// the only place the mapping lives.
func connectCode(status int) connect.Code {
	switch status {
	case http.StatusBadRequest:
		return connect.CodeInvalidArgument
	case http.StatusUnauthorized:
		return connect.CodeUnauthenticated
	case http.StatusForbidden:
		return connect.CodePermissionDenied
	case http.StatusNotFound:
		return connect.CodeNotFound
	case http.StatusConflict:
		return connect.CodeAlreadyExists
	case http.StatusPreconditionFailed:
		return connect.CodeFailedPrecondition
	case http.StatusTooManyRequests:
		return connect.CodeResourceExhausted
	case 499: // client closed request
		return connect.CodeCanceled
	case http.StatusInternalServerError:
		return connect.CodeInternal
	case http.StatusNotImplemented:
		return connect.CodeUnimplemented
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return connect.CodeUnavailable
	case http.StatusGatewayTimeout:
		return connect.CodeDeadlineExceeded
	}
	return connect.CodeUnknown
}

// rpcError turns an error of a relayed operation into the Connect error the SDKs expect. A worker that
// no longer serves the sandbox (or a stream that went silent) is unavailable with the proxy's "not
// found" message, which the SDKs read as a sandbox that was killed or timed out.
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	var se *schema.Error
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &se):
		return connect.NewError(connectCode(se.Code), errors.New(se.Message))
	case errors.Is(err, bus.ErrNoOwner):
		return connect.NewError(connect.CodeUnavailable, errors.New("the sandbox was not found: no worker serves it any more"))
	case errors.Is(err, bus.ErrStreamIdle):
		return connect.NewError(connect.CodeUnavailable, errors.New("the connection to the sandbox ended before the stream completed"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}
