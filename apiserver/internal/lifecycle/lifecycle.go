// Package lifecycle is the apiserver's business logic for sandboxes: create (queue the command, or place
// it on the worker holding a snapshot, and wait until a worker runs it), read, list, kill, change
// timeouts, pause and resume, and snapshots (capture, list, delete). It speaks to workers only through the
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
	// OpTimeout bounds a pause, a resume or a snapshot deletion on a worker.
	OpTimeout time.Duration
	// KillTimeout bounds a kill on a worker (which waits for every process to die).
	KillTimeout time.Duration
	// SnapshotTimeout bounds the capture of a snapshot (it copies the sandbox's files).
	SnapshotTimeout time.Duration
	// PlaceTimeout bounds how long the worker holding a snapshot may take to claim a sandbox made from it.
	PlaceTimeout time.Duration
	// Now is the clock (tests may replace it).
	Now func() time.Time
}

// New returns a Service with defaults filled in.
func New(b *bus.Bus, log *slog.Logger) *Service {
	return &Service{
		Bus: b, Log: log, Now: time.Now,
		CreateTimeout:   30 * time.Second,
		OpTimeout:       30 * time.Second,
		KillTimeout:     45 * time.Second,
		SnapshotTimeout: 5 * time.Minute,
		PlaceTimeout:    10 * time.Second,
	}
}

// CreateParams is a validated create request.
type CreateParams struct {
	// Template is the built-in template named by TemplateRef; when TemplateRef names none, Template is
	// zero and TemplateRef must name a snapshot.
	Template    schema.Template
	TemplateRef string
	Timeout     time.Duration
	Secure      bool
	Metadata    map[string]string
	EnvVars     map[string]string
	AutoPause   bool
	// AutoResume makes traffic to the sandbox resume it when it is paused (it needs AutoPause).
	AutoResume    bool
	AllowInternet *bool
	// Egress is the sandbox's egress policy (nil: none asked for).
	Egress *schema.Egress
	// ForkOf is the sandbox a fork copies (TemplateRef then names the fork's snapshot of it).
	ForkOf string
}

// Create starts a sandbox and waits until a worker reports it running. A sandbox of a built-in template
// is queued for any worker with free capacity; one made from a snapshot is placed on the worker that
// holds the snapshot.
func (s *Service) Create(ctx context.Context, p CreateParams) (schema.Record, error) {
	now := s.Now().UTC()
	rec := schema.Record{
		ID:             schema.NewSandboxID(),
		State:          schema.StatePending,
		EnvdVersion:    schema.EnvdVersion,
		Metadata:       p.Metadata,
		EnvVars:        p.EnvVars,
		OnTimeout:      "kill",
		AutoResume:     p.AutoResume,
		TimeoutSeconds: int(p.Timeout / time.Second),
		AllowInternet:  p.AllowInternet,
		Egress:         p.Egress,
		CreatedAt:      now,
		EndAt:          now.Add(p.Timeout),
	}
	if p.Secure {
		rec.AccessToken = schema.NewToken(20)
	}
	if p.AutoPause {
		rec.OnTimeout = "pause"
	}
	if p.Egress != nil && p.Egress.Restricts() {
		if err := s.egressEnforced(ctx); err != nil {
			return schema.Record{}, err
		}
	}
	var start func(ctx context.Context, id string) error
	if p.Template.ID != "" {
		rec.TemplateID, rec.Alias = p.Template.ID, p.Template.Aliases[0]
		rec.CPUCount, rec.MemoryMB, rec.DiskSizeMB = p.Template.CPUCount, p.Template.MemoryMB, p.Template.DiskSizeMB
		start = s.queue
	} else {
		snap, err := s.FindSnapshot(ctx, p.TemplateRef)
		if errors.Is(err, schema.ErrNotFound) {
			return schema.Record{}, schema.Errorf(http.StatusNotFound, "template %q not found", p.TemplateRef)
		}
		if err != nil {
			return schema.Record{}, err
		}
		fromSnapshot(&rec, snap, p.EnvVars)
		rec.ForkOf = p.ForkOf
		start = func(ctx context.Context, id string) error { return s.place(ctx, id, p.TemplateRef, snap) }
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
	if err := start(ctx, rec.ID); err != nil {
		log.Warn("create failed", "error", err)
		return schema.Record{}, err
	}
	got, err := s.waitRunning(ctx, rec.ID, events)
	if err != nil {
		log.Warn("create failed", "error", err)
		return schema.Record{}, err
	}
	return got, nil
}

// queue publishes the create command of a pending record for any worker with free capacity.
func (s *Service) queue(ctx context.Context, id string) error {
	cmd, _ := json.Marshal(schema.CreateCommand{SandboxID: id})
	if _, err := s.Bus.JS.Publish(ctx, schema.SubjectCreate, cmd, jetstream.WithMsgID(id)); err != nil {
		s.abandon(id, "create command not queued")
		return fmt.Errorf("create %s: queue command: %w", id, err)
	}
	return nil
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
