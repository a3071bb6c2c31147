package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

// Get returns a live sandbox's record. Sandboxes that ended, or never existed, are 404; the message
// says why an ended one ended.
func (s *Service) Get(ctx context.Context, id string) (schema.Record, error) {
	rec, _, err := s.Bus.GetRecord(ctx, id)
	if errors.Is(err, schema.ErrNotFound) {
		return schema.Record{}, notFound(id)
	}
	if err != nil {
		return schema.Record{}, err
	}
	if rec.State.Terminal() {
		return schema.Record{}, schema.Errorf(http.StatusNotFound, "sandbox %q not found: it was %s (%s)", id, rec.State, rec.Reason)
	}
	if !rec.State.Live() && rec.State != schema.StateKilling {
		return schema.Record{}, schema.Errorf(http.StatusNotFound, "sandbox %q not found: it is still %s", id, rec.State)
	}
	return rec, nil
}

func notFound(id string) error { return schema.Errorf(http.StatusNotFound, "sandbox %q not found", id) }

// Kill ends a sandbox. A pending one is ended in the bucket; a claimed one is killed by its owner; one
// whose owner is gone is recorded as lost.
func (s *Service) Kill(ctx context.Context, id string) error {
	rec, _, err := s.Bus.UpdateRecord(ctx, id, func(r schema.Record) (schema.Record, error) {
		if r.State != schema.StatePending {
			return r, errNotPending
		}
		r, err := r.Transition(schema.StateKilled, schema.ReasonKilled)
		r.EndedAt = s.Now().UTC()
		return r, err
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, schema.ErrNotFound):
		return notFound(id)
	case !errors.Is(err, errNotPending):
		return fmt.Errorf("kill %s: %w", id, err)
	}
	if rec.State.Terminal() {
		return notFound(id)
	}
	err = s.killOnOwner(ctx, rec)
	switch {
	case errors.Is(err, bus.ErrNoOwner):
		s.markGone(id, schema.ReasonKilled+" (worker unreachable)")
		return nil
	case errors.Is(err, errOwnerLost):
		s.markGone(id, schema.ReasonKilled+" (worker lost during the kill)")
		return nil
	case errors.Is(err, schema.ErrNotFound):
		// The owner no longer has it: the record is already ended or about to be.
		s.markGone(id, schema.ReasonKilled)
		return nil
	}
	return s.opError(ctx, err, "sandbox "+strconv.Quote(id), schema.OpKill, s.KillTimeout)
}

// errOwnerLost means the owner's heartbeat ended while it was asked to kill.
var errOwnerLost = errors.New("owner lost")

// killHeartbeatCheck is how often a kill in progress checks that its owner still beats.
const killHeartbeatCheck = time.Second

// killOnOwner asks rec's owner to kill the sandbox, within KillTimeout. A worker that dies with the
// request in hand never answers: while waiting, the owner's heartbeat is checked, and its end (after the
// worker TTL) ends the wait with errOwnerLost, since the sandbox died with its worker.
func (s *Service) killOnOwner(ctx context.Context, rec schema.Record) error {
	kctx, cancel := context.WithTimeout(ctx, s.KillTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Request[schema.Empty](kctx, s, rec.ID, schema.OpKill, schema.KillRequest{Reason: schema.ReasonKilled})
		done <- err
	}()
	tick := time.NewTicker(killHeartbeatCheck)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if rec.Worker == "" {
				continue
			}
			if alive, err := s.workerAlive(kctx, rec.Worker); err == nil && !alive {
				cancel()
				<-done
				return errOwnerLost
			}
		}
	}
}

// markGone ends a record whose owner cannot be reached, unless it ended meanwhile.
func (s *Service) markGone(id, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := s.Bus.UpdateRecord(ctx, id, func(r schema.Record) (schema.Record, error) {
		if r.State.Terminal() {
			return r, errTerminal
		}
		to := schema.StateLost
		if r.State == schema.StatePending {
			to = schema.StateKilled
		}
		r, err := r.Transition(to, reason)
		r.EndedAt = s.Now().UTC()
		return r, err
	})
	if err != nil && !errors.Is(err, errTerminal) {
		s.Log.Warn("mark sandbox gone", "sandbox_id", id, "error", err)
	}
}

var errTerminal = errors.New("record already ended")

// SetTimeout moves the sandbox's end to now+d (shorter or longer). extendOnly never shortens it.
func (s *Service) SetTimeout(ctx context.Context, id string, d time.Duration, extendOnly bool) (schema.Record, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return schema.Record{}, err
	}
	req := schema.TimeoutRequest{EndAt: s.Now().UTC().Add(d), ExtendOnly: extendOnly}
	reply, err := requestWithin[schema.TimeoutReply](ctx, s, id, schema.OpTimeout, req, s.OpTimeout)
	if err != nil {
		return schema.Record{}, err
	}
	return reply.Record, nil
}

// Request sends an operation to a sandbox's owner. While nobody answers it retries briefly: an owner
// that is reconnecting to NATS (after an outage or a cluster node's loss) has no subscriptions for a
// moment. It never ends the record: only the reaper, which watches heartbeats, declares an owner gone.
func Request[Resp any](ctx context.Context, s *Service, id, op string, req any) (Resp, error) {
	return requestSubject[Resp](ctx, s, schema.SubjectOp(id, op), req)
}

// requestSubject is Request for any subject (a sandbox's owner or a worker), with the same brief
// retries while nobody answers.
func requestSubject[Resp any](ctx context.Context, s *Service, subject string, req any) (Resp, error) {
	delay := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		resp, err := bus.Request[Resp](ctx, s.Bus.NC, subject, req)
		if !errors.Is(err, bus.ErrNoOwner) || attempt == 3 {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return resp, err
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// requestWithin is Request bounded by timeout, whose expiry (while the caller still waits) is a 504
// naming the operation, and "no responders" a 503: the worker may be reconnecting, or gone (then the
// reaper ends the record soon). The worker's own errors pass through.
func requestWithin[Resp any](ctx context.Context, s *Service, id, op string, req any, timeout time.Duration) (Resp, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := Request[Resp](rctx, s, id, op, req)
	return resp, s.opError(ctx, err, "sandbox "+strconv.Quote(id), op, timeout)
}

// opError maps the transport failures of a request to a worker (about what, doing op) to client errors.
// ctx is the caller's context, so a timeout of the request is told apart from a client that went away.
func (s *Service) opError(ctx context.Context, err error, what, op string, timeout time.Duration) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bus.ErrNoOwner):
		return schema.Errorf(http.StatusServiceUnavailable, "the worker of %s does not answer; try again", what)
	case ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)):
		return schema.Errorf(http.StatusGatewayTimeout, "the worker of %s did not finish %s within %s", what, op, timeout)
	}
	var se *schema.Error
	if errors.As(err, &se) {
		return se
	}
	return fmt.Errorf("%s %s: %w", op, what, err)
}

// SetNetwork replaces a live sandbox's egress policy on its owner.
func (s *Service) SetNetwork(ctx context.Context, id string, e schema.Egress) (schema.Record, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return schema.Record{}, err
	}
	return requestWithin[schema.Record](ctx, s, id, schema.OpNetwork, schema.NetworkRequest{Egress: e}, s.OpTimeout)
}

// egressEnforced fails with a 501 unless a live worker's runtime enforces egress policies: a create that
// asks for one would fail on every other worker.
func (s *Service) egressEnforced(ctx context.Context) error {
	ws, err := s.Workers(ctx)
	if err != nil {
		return err
	}
	for _, w := range ws {
		if w.Egress && !w.Draining {
			return nil
		}
	}
	return schema.Errorf(http.StatusNotImplemented,
		"no worker can enforce a network policy (allow_internet_access: false, allowOut, denyOut): that needs workers on the jail runtime")
}

// readTimeout bounds the reads of buckets that take more than one request (listings, lookups by name).
const readTimeout = 10 * time.Second

// Workers returns the heartbeats of the live workers.
func (s *Service) Workers(ctx context.Context) ([]schema.WorkerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	keys, err := s.Bus.Workers.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	defer func() { _ = keys.Stop() }()
	var out []schema.WorkerInfo
	for k := range keys.Keys() {
		e, err := s.Bus.Workers.Get(ctx, k)
		if err != nil {
			continue // expired meanwhile
		}
		var w schema.WorkerInfo
		if json.Unmarshal(e.Value(), &w) == nil {
			out = append(out, w)
		}
	}
	return out, nil
}
