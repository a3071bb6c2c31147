package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"fleetbox.dev/schema"
)

// DefaultRequestTimeout bounds a request whose context has no deadline.
const DefaultRequestTimeout = 10 * time.Second

// ErrNoOwner means nobody serves the sandbox's subjects: its worker is gone or it was never started.
var ErrNoOwner = errors.New("no worker serves this sandbox")

// Request sends req as JSON to subject and decodes the schema.Reply[Resp] envelope. A reply carrying an
// error is returned as *schema.Error; no responders is ErrNoOwner.
func Request[Resp any](ctx context.Context, nc *nats.Conn, subject string, req any) (Resp, error) {
	var zero Resp
	data, err := json.Marshal(req)
	if err != nil {
		return zero, fmt.Errorf("encode request to %s: %w", subject, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	msg, err := nc.RequestWithContext(ctx, subject, data)
	if errors.Is(err, nats.ErrNoResponders) {
		return zero, fmt.Errorf("request %s: %w", subject, ErrNoOwner)
	}
	if err != nil {
		return zero, fmt.Errorf("request %s: %w", subject, err)
	}
	var reply schema.Reply[Resp]
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return zero, fmt.Errorf("decode reply from %s: %w", subject, err)
	}
	if reply.Error != nil {
		return zero, reply.Error
	}
	return reply.Data, nil
}

// Mux serves the per-sandbox operation subjects of one worker: one subscription per sandbox
// (schema.SubjectOps), dispatched by operation name to typed handlers shared by all sandboxes.
type Mux struct {
	handlers map[string]func(ctx context.Context, id string, data []byte) (any, error)
	timeout  time.Duration
	log      *slog.Logger
}

// NewMux returns a Mux whose handlers each run with a context bounded by timeout.
func NewMux(timeout time.Duration, log *slog.Logger) *Mux {
	return &Mux{handlers: map[string]func(context.Context, string, []byte) (any, error){}, timeout: timeout, log: log}
}

// Handle registers h for operation op. The request is decoded from JSON into Req; the reply payload or
// error is wrapped in schema.Reply (an error that is not a *schema.Error becomes a 500).
func Handle[Req, Resp any](m *Mux, op string, h func(ctx context.Context, sandboxID string, req Req) (Resp, error)) {
	m.handlers[op] = func(ctx context.Context, id string, data []byte) (any, error) {
		var req Req
		if err := json.Unmarshal(data, &req); err != nil {
			return nil, schema.Errorf(http.StatusBadRequest, "decode %s request: %v", op, err)
		}
		resp, err := h(ctx, id, req)
		if err != nil {
			return nil, err
		}
		return resp, nil
	}
}

// Subscribe serves sandbox id's operations until the subscription is dropped.
func (m *Mux) Subscribe(nc *nats.Conn, id string) (*nats.Subscription, error) {
	return m.subscribe(nc, id, schema.SubjectOp(id, ""), schema.SubjectOps(id))
}

// SubscribeWorker serves the operations addressed to worker id (schema.SubjectWorkerOp) until the
// subscription is dropped; handlers get the worker id as their id. Use a Mux of its own for them.
func (m *Mux) SubscribeWorker(nc *nats.Conn, id string) (*nats.Subscription, error) {
	return m.subscribe(nc, id, schema.SubjectWorkerOp(id, ""), schema.SubjectWorkerOps(id))
}

// subscribe dispatches every request on wildcard to the handler of the op that follows prefix.
func (m *Mux) subscribe(nc *nats.Conn, id, prefix, wildcard string) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(wildcard, func(msg *nats.Msg) {
		if len(msg.Subject) <= len(prefix) || msg.Reply == "" {
			return
		}
		op := msg.Subject[len(prefix):]
		go m.dispatch(msg, id, op)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", wildcard, err)
	}
	return sub, nil
}

func (m *Mux) dispatch(msg *nats.Msg, id, op string) {
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	var (
		data any
		err  error
	)
	if h, ok := m.handlers[op]; ok {
		data, err = h(ctx, id, msg.Data)
	} else {
		err = schema.Errorf(http.StatusNotImplemented, "unknown operation %q", op)
	}
	reply := schema.Reply[any]{Data: data}
	if err != nil {
		reply = schema.Reply[any]{Error: asSchemaError(err)}
	}
	out, err := json.Marshal(reply)
	if err != nil {
		out, _ = json.Marshal(schema.Reply[any]{Error: schema.Errorf(http.StatusInternalServerError, "encode reply: %v", err)})
	}
	if err := msg.Respond(out); err != nil && m.log != nil {
		m.log.Warn("respond", "subject", msg.Subject, "error", err)
	}
}

func asSchemaError(err error) *schema.Error {
	var e *schema.Error
	if errors.As(err, &e) {
		return e
	}
	return &schema.Error{Code: http.StatusInternalServerError, Message: err.Error()}
}
