// Package lifecycle is the apiserver's business logic for sandboxes: create (queue the command and wait
// until a worker runs it), read, list, kill and change timeouts. It speaks to workers only through the
// bus, and keeps no sandbox state of its own: every answer comes from the KV record or the owner worker.
package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

// Service runs sandbox operations against the bus.
type Service struct {
	Bus *bus.Bus
	Log *slog.Logger
	// CreateTimeout bounds how long a create waits for a worker to run the sandbox.
	CreateTimeout time.Duration
	// Now is the clock (tests may replace it).
	Now func() time.Time
}

// New returns a Service with defaults filled in.
func New(b *bus.Bus, log *slog.Logger) *Service {
	return &Service{Bus: b, Log: log, CreateTimeout: 30 * time.Second, Now: time.Now}
}

// CreateParams is a validated create request.
type CreateParams struct {
	Template      schema.Template
	TemplateRef   string
	Timeout       time.Duration
	Secure        bool
	Metadata      map[string]string
	EnvVars       map[string]string
	AutoPause     bool
	AllowInternet *bool
}

// Create queues a create command and waits until a worker reports the sandbox running.
func (s *Service) Create(ctx context.Context, p CreateParams) (schema.Record, error) {
	now := s.Now().UTC()
	rec := schema.Record{
		ID:            schema.NewSandboxID(),
		TemplateID:    p.Template.ID,
		Alias:         p.Template.Aliases[0],
		State:         schema.StatePending,
		EnvdVersion:   schema.EnvdVersion,
		Metadata:      p.Metadata,
		EnvVars:       p.EnvVars,
		CPUCount:      p.Template.CPUCount,
		MemoryMB:      p.Template.MemoryMB,
		DiskSizeMB:    p.Template.DiskSizeMB,
		OnTimeout:     "kill",
		AllowInternet: p.AllowInternet,
		CreatedAt:     now,
		EndAt:         now.Add(p.Timeout),
	}
	if p.Secure {
		rec.AccessToken = schema.NewToken(20)
	}
	if p.AutoPause {
		rec.OnTimeout = "pause"
	}
	log := s.Log.With("sandbox_id", rec.ID)

	// Subscribe to the record's events before anything can happen to it.
	events := make(chan *nats.Msg, 16)
	sub, err := s.Bus.NC.ChanSubscribe(schema.SubjectEvents(rec.ID), events)
	if err != nil {
		return schema.Record{}, fmt.Errorf("create %s: subscribe events: %w", rec.ID, err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	if _, err := s.Bus.CreateRecord(ctx, rec); err != nil {
		return schema.Record{}, fmt.Errorf("create %s: %w", rec.ID, err)
	}
	cmd, _ := json.Marshal(schema.CreateCommand{SandboxID: rec.ID})
	if _, err := s.Bus.JS.Publish(ctx, schema.SubjectCreate, cmd, jetstream.WithMsgID(rec.ID)); err != nil {
		s.abandon(rec.ID, "create command not queued")
		return schema.Record{}, fmt.Errorf("create %s: queue command: %w", rec.ID, err)
	}

	got, err := s.waitRunning(ctx, rec.ID, events)
	if err != nil {
		log.Warn("create failed", "error", err)
		return schema.Record{}, err
	}
	return got, nil
}

// waitRunning waits for the record to leave pending/starting. It listens to the owner's events and also
// polls the bucket, so a missed event costs at most one poll interval.
func (s *Service) waitRunning(ctx context.Context, id string, events <-chan *nats.Msg) (schema.Record, error) {
	deadline := time.NewTimer(s.CreateTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	for {
		var rec schema.Record
		select {
		case <-ctx.Done():
			s.abandon(id, "client went away during create")
			return schema.Record{}, fmt.Errorf("create %s: %w", id, ctx.Err())
		case <-deadline.C:
			s.abandon(id, schema.ReasonCreateTimeout)
			return schema.Record{}, schema.Errorf(http.StatusServiceUnavailable,
				"no worker started sandbox %s within %s; the fleet may be at capacity", id, s.CreateTimeout)
		case m := <-events:
			if json.Unmarshal(m.Data, &rec) != nil {
				continue
			}
		case <-poll.C:
			r, _, err := s.Bus.GetRecord(ctx, id)
			if err != nil {
				continue
			}
			rec = r
		}
		switch rec.State {
		case schema.StateRunning:
			return rec, nil
		case schema.StatePending, schema.StateStarting, "":
			continue
		case schema.StateFailed:
			return schema.Record{}, schema.Errorf(http.StatusInternalServerError, "sandbox %s failed to start: %s", id, rec.Reason)
		default:
			return schema.Record{}, schema.Errorf(http.StatusConflict, "sandbox %s is %s: %s", id, rec.State, rec.Reason)
		}
	}
}

// abandon makes sure a sandbox whose create was given up never lives on unseen: a pending record is
// ended before any worker claims it; a claimed one is killed through its owner. It retries with backoff
// for up to a minute in the background (the bus may be what failed the create), so the caller answers at
// once.
func (s *Service) abandon(id, reason string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		bo := backoff.WithContext(backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(200*time.Millisecond),
			backoff.WithMaxInterval(5*time.Second),
		), ctx)
		err := backoff.Retry(func() error { return s.abandonOnce(ctx, id, reason) }, bo)
		if err != nil {
			s.Log.Warn("abandon sandbox: giving up; its timeout will end it", "sandbox_id", id, "error", err)
		}
	}()
}

func (s *Service) abandonOnce(ctx context.Context, id, reason string) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _, err := s.Bus.UpdateRecord(rctx, id, func(r schema.Record) (schema.Record, error) {
		if r.State != schema.StatePending {
			return r, errNotPending
		}
		r, err := r.Transition(schema.StateFailed, reason)
		r.EndedAt = s.Now().UTC()
		return r, err
	})
	switch {
	case err == nil, errors.Is(err, schema.ErrNotFound):
		return nil
	case errors.Is(err, errNotPending):
		if err := s.Kill(rctx, id); err != nil && !errors.Is(err, schema.ErrNotFound) {
			return err
		}
		return nil
	}
	return err
}

var errNotPending = errors.New("record is no longer pending")
