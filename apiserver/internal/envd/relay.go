package envd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

const (
	// streamIdleTimeout is how long a relay waits for a chunk before it asks whether the stream's owner
	// is still there. A silent process is normal, so silence alone never ends a stream: only an owner
	// that no longer answers does.
	streamIdleTimeout = 15 * time.Second
	// ownerProbeTimeout bounds that question.
	ownerProbeTimeout = 5 * time.Second
	// maxEventLine bounds one JSON line of an event stream (workers send output in chunks of at most
	// 32 KiB, far below this).
	maxEventLine = 16 << 20
)

// eventJSON decodes the worker's JSON event lines into the generated messages; fields this apiserver
// does not know (a newer worker) are ignored.
var eventJSON = protojson.UnmarshalOptions{DiscardUnknown: true}

// newStreamName names a fresh byte stream of a sandbox.
func newStreamName() string { return schema.NewToken(12) }

// openOp opens the byte stream named stream before asking the owner to run op, so no chunk can be
// published before the subscription exists. req must name the same stream.
func openOp[Resp any](ctx context.Context, s *service, id, op, stream string, req any) (*bus.StreamReader, Resp, error) {
	var zero Resp
	rd, err := bus.OpenStream(s.Sandboxes.Bus.NC, id, stream, streamIdleTimeout)
	if err != nil {
		return nil, zero, err
	}
	resp, err := lifecycle.Request[Resp](ctx, s.Sandboxes, id, op, req)
	if err != nil {
		rd.Close()
		return nil, zero, err
	}
	return rd, resp, nil
}

// relayEvents reads the JSON lines of an event stream, decodes each into a fresh message from newMsg
// and hands it to send, until the stream ends. A clean end is nil; a failed end is the worker's error.
// When the stream was silent for streamIdleTimeout and its owner still answers, onIdle runs (it sends a
// keepalive, so proxies between the client and us see traffic) and the relay goes on waiting.
func relayEvents[M proto.Message](ctx context.Context, s *service, id string, rd *bus.StreamReader, newMsg func() M, send func(M) error, onIdle func() error) error {
	return s.relayLines(ctx, id, rd, func(line []byte) error {
		m := newMsg()
		if err := eventJSON.Unmarshal(line, m); err != nil {
			return fmt.Errorf("decode event from worker: %w", err)
		}
		return send(m)
	}, onIdle)
}

// relayLines calls line with each non-empty line of the stream. Chunk boundaries carry no meaning, so a
// line may span chunks; at most one partial line is buffered.
func (s *service) relayLines(ctx context.Context, id string, rd *bus.StreamReader, line func([]byte) error, onIdle func() error) error {
	var buf []byte
	for {
		chunk, err := rd.Next(ctx)
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			if len(bytes.TrimSpace(buf)) > 0 {
				return line(buf)
			}
			return nil
		case errors.Is(err, bus.ErrStreamIdle):
			if perr := s.ownerAnswers(id); perr != nil {
				return perr
			}
			if onIdle != nil {
				if err := onIdle(); err != nil {
					return err
				}
			}
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			return err
		}
		buf = append(buf, chunk...)
		start := 0
		for {
			i := bytes.IndexByte(buf[start:], '\n')
			if i < 0 {
				break
			}
			l := buf[start : start+i]
			start += i + 1
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			if err := line(l); err != nil {
				return err
			}
		}
		buf = buf[:copy(buf, buf[start:])]
		if len(buf) > maxEventLine {
			return fmt.Errorf("event line from worker longer than %d bytes", maxEventLine)
		}
	}
}

// ownerAnswers asks the sandbox's owner for something cheap after its stream went silent. Any answer,
// even an error, means it is alive; no responders (the sandbox is then marked gone) or no answer in
// time means the stream will never end properly.
func (s *service) ownerAnswers(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), ownerProbeTimeout)
	defer cancel()
	_, err := lifecycle.Request[json.RawMessage](ctx, s.Sandboxes, id, schema.OpEnvs, schema.Empty{})
	var se *schema.Error
	switch {
	case err == nil, errors.As(err, &se):
		return nil
	case errors.Is(err, bus.ErrNoOwner):
		return err
	}
	s.Log.Warn("stream owner does not answer", "sandbox_id", id, "error", err)
	return bus.ErrStreamIdle
}
