package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// MaxExecuteBody bounds the body of /execute (the code and its env vars).
const MaxExecuteBody = 16 << 20

// streamIdleTimeout is how long the relay waits for any output; workers send keepalives every 5 s, so
// silence this long means the worker is gone.
const streamIdleTimeout = 15 * time.Second

// execute serves POST /execute: it streams the execution's NDJSON lines, flushing each as it arrives.
// A client that disconnects interrupts the execution.
func (g *Gateway) execute(w http.ResponseWriter, r *http.Request) {
	rec := recordOf(r.Context())
	if err := checkToken(r, rec); err != nil {
		httpjson.Error(w, nil, err)
		return
	}
	var req e2b.ExecuteRequest
	if err := httpjson.Decode(w, r, MaxExecuteBody, &req, true); err != nil {
		httpjson.Error(w, g.Log, err)
		return
	}
	stream, err := g.startExecution(r.Context(), rec.ID, req)
	if err != nil {
		g.opError(w, rec.ID, err)
		return
	}
	defer stream.Close()

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	atLineStart := true
	for {
		chunk, err := stream.Next(r.Context())
		if err != nil {
			if r.Context().Err() != nil {
				return // the client went away; stream.Close cancels the execution
			}
			if !errors.Is(err, io.EOF) {
				g.Log.Warn("execution stream ended abnormally", "sandbox_id", rec.ID, "error", err)
				_, _ = w.Write(abnormalEnd(atLineStart, err))
				_ = rc.Flush()
			}
			return
		}
		if len(chunk) == 0 {
			continue
		}
		if _, err := w.Write(chunk); err != nil {
			return
		}
		atLineStart = chunk[len(chunk)-1] == '\n'
		if atLineStart {
			_ = rc.Flush()
		}
	}
}

// startExecution validates an execute request, opens the output stream and asks the owner to run it.
func (g *Gateway) startExecution(ctx context.Context, sandboxID string, req e2b.ExecuteRequest) (*bus.StreamReader, error) {
	if req.Code == nil {
		return nil, schema.Errorf(http.StatusUnprocessableEntity, "field \"code\" is required")
	}
	ereq := schema.ExecuteRequest{Code: *req.Code, EnvVars: req.EnvVars, Stream: schema.NewToken(12)}
	if req.ContextID != nil {
		ereq.ContextID = *req.ContextID
	}
	if req.Language != nil {
		ereq.Language = normalizeLanguage(*req.Language)
	}
	if ereq.ContextID != "" && ereq.Language != "" {
		return nil, schema.Errorf(http.StatusBadRequest, "Only one of context_id or language can be provided")
	}
	if ereq.ContextID != "" && !schema.ValidToken(ereq.ContextID) {
		return nil, schema.Errorf(http.StatusNotFound, "Context %s not found", ereq.ContextID)
	}
	stream, err := bus.OpenStream(g.Sandboxes.Bus.NC, sandboxID, ereq.Stream, streamIdleTimeout)
	if err != nil {
		return nil, err
	}
	if _, err := lifecycle.Request[schema.Empty](ctx, g.Sandboxes, sandboxID, schema.OpExecute, ereq); err != nil {
		stream.Close()
		return nil, err
	}
	return stream, nil
}

// abnormalEnd is what the client reads when the stream broke before end_of_execution: an error line
// (after ending a partial line) and the end marker, so SDKs surface an error instead of hanging.
func abnormalEnd(atLineStart bool, cause error) []byte {
	var out []byte
	if !atLineStart {
		out = append(out, '\n')
	}
	line, _ := json.Marshal(map[string]string{
		"type":      "error",
		"name":      "UnexpectedEndOfExecution",
		"value":     fmt.Sprintf("Connection to the execution was closed before the execution was finished: %v", cause),
		"traceback": "",
	})
	out = append(out, line...)
	out = append(out, '\n')
	out = append(out, `{"type":"end_of_execution"}`+"\n"...)
	return out
}

func isOwnerGone(err error) bool { return errors.Is(err, bus.ErrNoOwner) }
