package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  16 << 10,
	WriteBufferSize: 64 << 10,
	// The access token, not the origin, authorises a WebSocket, as it does every other data-plane call.
	CheckOrigin: func(*http.Request) bool { return true },
}

const (
	wsWriteTimeout = 30 * time.Second
	wsFirstFrame   = 30 * time.Second
	// maxLine bounds the one partial line the relay buffers per connection (a result with a big image).
	maxLine = 64 << 20
)

// executeWS serves GET /execute/ws: one JSON request frame (the /execute body) in, each NDJSON line out
// as a text frame, then a normal close. Errors before the execution starts close the socket with code
// 4000+HTTP status and the message as reason. The relay holds at most one partial line and never reads
// ahead of the client: a slow reader slows the execution through the stream's credit, never the bus.
func (g *Gateway) executeWS(w http.ResponseWriter, r *http.Request) {
	rec := recordOf(r.Context())
	if err := checkToken(r, rec); err != nil {
		httpjson.Error(w, nil, err)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader already answered
	}
	defer conn.Close()
	conn.SetReadLimit(MaxExecuteBody)

	_ = conn.SetReadDeadline(time.Now().Add(wsFirstFrame))
	_, body, err := conn.ReadMessage()
	if err != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	var req e2b.ExecuteRequest
	if err := httpjson.Unmarshal(body, &req, true); err != nil {
		closeWithError(conn, err)
		return
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stream, err := g.startExecution(ctx, rec.ID, req)
	if err != nil {
		if isOwnerGone(err) {
			err = schema.Errorf(http.StatusBadGateway, "The sandbox was not found")
		}
		closeWithError(conn, err)
		return
	}
	defer stream.Close()

	// Reading is needed to see control frames and the client going away.
	go func() {
		defer cancel()
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()

	var partial []byte
	send := func(line []byte) error {
		_ = conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
		return conn.WriteMessage(websocket.TextMessage, line)
	}
	for {
		chunk, err := stream.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, io.EOF) {
				for _, line := range bytes.Split(bytes.TrimSuffix(abnormalEnd(true, err), []byte("\n")), []byte("\n")) {
					if send(line) != nil {
						return
					}
				}
			}
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			return
		}
		partial = append(partial, chunk...)
		for {
			i := bytes.IndexByte(partial, '\n')
			if i < 0 {
				break
			}
			if send(partial[:i]) != nil {
				return
			}
			partial = partial[i+1:]
		}
		if len(partial) > maxLine {
			closeWithError(conn, schema.Errorf(http.StatusRequestEntityTooLarge, "output line longer than %d bytes", maxLine))
			return
		}
		if len(partial) == 0 {
			partial = nil // let a big line's buffer go
		}
	}
}

// closeWithError closes a WebSocket with code 4000+status and the error message as reason.
func closeWithError(conn *websocket.Conn, err error) {
	code := 4000 + schema.CodeOf(err)
	msg := err.Error()
	var se *schema.Error
	if errors.As(err, &se) {
		msg = se.Message
	}
	if len(msg) > 120 {
		msg = msg[:120]
	}
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, msg), time.Now().Add(time.Second))
}
