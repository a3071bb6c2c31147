// Package claim is the create loop of a worker: only while it has a free slot, it fetches one create
// command from the shared durable pull consumer, claims the sandbox by moving its record pending →
// starting with a compare-and-set (the CAS, not the message delivery, is the mutex: JetStream delivers at
// least once), has the worker start it, and acks. Many claims run at once, each in its own goroutine.
package claim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/logkey"
)

// StartFunc starts the sandbox of a claimed record (state starting, Worker set to this worker, stored at
// revision rev) and moves the record to running. It returns nil once the record is running, and the
// sandbox then owns its slot. On error nothing of the sandbox is left; the loop marks the record failed
// if it is still this worker's and starting.
type StartFunc func(ctx context.Context, rec schema.Record, rev uint64) error

// Config configures a Loop.
type Config struct {
	Bus      *bus.Bus
	WorkerID string
	Slots    *Slots
	Start    StartFunc
	// FetchWait is how long one pull request waits for a command (default 2 s). A pull request cannot be
	// withdrawn, so stopping the loop waits for the current one to end; keep it short.
	FetchWait time.Duration
	// Admit, if set, is asked before each fetch whether the host can take one more sandbox (beyond the
	// free slot), e.g. enough free memory; while it says no, the loop waits instead of fetching, so the
	// command goes to a worker that can take it.
	Admit func() error
	// Accept, if set, says whether this worker can start the sandbox of a pending record (its runtime can
	// enforce what the record asks for); a command it refuses is handed back for another worker.
	Accept func(rec schema.Record) bool
	// StartTimeout bounds one sandbox start (default 2 minutes).
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// Loop fetches and claims create commands.
type Loop struct {
	cfg Config
	log *slog.Logger
	wg  sync.WaitGroup

	mu      sync.Mutex
	stopped bool // Run has returned (or is returning): Place refuses
}

// New returns a claim loop.
func New(cfg Config) *Loop {
	if cfg.FetchWait <= 0 {
		cfg.FetchWait = 2 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Loop{cfg: cfg, log: log.With(logkey.Subsystem, "claim")}
}

// Run claims commands until ctx ends, then waits for the claims in progress to finish (a claim that has
// started a sandbox completes it; the worker's drain deals with the sandbox).
func (l *Loop) Run(ctx context.Context) {
	defer func() {
		l.mu.Lock()
		l.stopped = true
		l.mu.Unlock()
		l.wg.Wait()
	}()
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second),
		backoff.WithMaxElapsedTime(0),
	)
	var cons jetstream.Consumer
	refused := false
	for ctx.Err() == nil {
		if err := l.cfg.Slots.Acquire(ctx); err != nil {
			return
		}
		if l.cfg.Admit != nil {
			if err := l.cfg.Admit(); err != nil {
				l.cfg.Slots.Release()
				if !refused {
					l.log.Warn("not claiming creates", logkey.Error, err)
					refused = true
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				continue
			}
			if refused {
				l.log.Info("claiming creates again")
				refused = false
			}
		}
		msg, err := l.next(ctx, &cons)
		if err != nil {
			l.cfg.Slots.Release()
			if ctx.Err() != nil {
				return
			}
			d := bo.NextBackOff()
			l.log.Warn("fetch create command; retrying", logkey.Error, err, "retry_in", d)
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
			continue
		}
		bo.Reset()
		if msg == nil { // no command within FetchWait
			l.cfg.Slots.Release()
			continue
		}
		if ctx.Err() != nil {
			// Stopping: hand the command straight back instead of letting it wait for AckWait.
			_ = msg.Nak()
			l.cfg.Slots.Release()
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.handle(msg)
		}()
	}
}

// Place claims and starts a sandbox whose create was placed on this worker (schema.OpWorkerCreate)
// instead of queued. It returns once the record is claimed, or with an error: 503 when the worker has no
// free slot, no room (Admit) or is stopping, 409 when the record is not pending. The start goes on in the
// background like a queued one: on failure the record is marked failed.
func (l *Loop) Place(ctx context.Context, id string) error {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return schema.Errorf(http.StatusServiceUnavailable, "worker %s is stopping", l.cfg.WorkerID)
	}
	l.wg.Add(1)
	l.mu.Unlock()
	started := false
	defer func() {
		if !started {
			l.wg.Done()
		}
	}()
	// The loop holds a slot while it waits for a queued command and gives it back when none came: wait a
	// little longer than one such fetch for a slot, so that a placed create can take the last one.
	actx, cancel := context.WithTimeout(ctx, l.cfg.FetchWait+time.Second)
	err := l.cfg.Slots.Acquire(actx)
	cancel()
	if err != nil {
		return schema.Errorf(http.StatusServiceUnavailable, "worker %s has no free slot", l.cfg.WorkerID)
	}
	if l.cfg.Admit != nil {
		if err := l.cfg.Admit(); err != nil {
			l.cfg.Slots.Release()
			return schema.Errorf(http.StatusServiceUnavailable, "worker %s cannot take a sandbox: %v", l.cfg.WorkerID, err)
		}
	}
	rec, rev, ok, err := l.claim(ctx, id)
	if errors.Is(err, errNoRecord) {
		err = schema.Errorf(http.StatusNotFound, "sandbox %s has no record", id)
	} else if errors.Is(err, errNotForMe) {
		err = schema.Errorf(http.StatusConflict, "sandbox %s needs what worker %s cannot give", id, l.cfg.WorkerID)
	} else if err == nil && !ok {
		err = schema.Errorf(http.StatusConflict, "sandbox %s is not pending", id)
	}
	if err != nil {
		l.cfg.Slots.Release()
		return fmt.Errorf("place %s: %w", id, err)
	}
	started = true
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.StartTimeout)
		defer cancel()
		log := l.log.With(logkey.SandboxID, id)
		if err := l.cfg.Start(ctx, rec, rev); err != nil {
			log.Error("start placed sandbox failed", logkey.Error, err)
			l.fail(ctx, id, fmt.Sprintf("start failed: %v", err), log)
			l.cfg.Slots.Release()
		}
	}()
	return nil
}

// next fetches one command; nil without error means none arrived in time. It (re)binds the consumer.
func (l *Loop) next(ctx context.Context, cons *jetstream.Consumer) (jetstream.Msg, error) {
	if *cons == nil {
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := l.cfg.Bus.Commands.Consumer(bctx, schema.ConsumerCreate)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("bind consumer %s: %w", schema.ConsumerCreate, err)
		}
		*cons = c
	}
	msg, err := (*cons).Next(jetstream.FetchMaxWait(l.cfg.FetchWait))
	if errors.Is(err, nats.ErrTimeout) {
		return nil, nil
	}
	if err != nil {
		*cons = nil // the consumer may be gone (recreated, leader moved): bind again
		return nil, fmt.Errorf("fetch: %w", err)
	}
	return msg, nil
}

// handle decides what one command means for this worker. It owns one slot and gives it back unless the
// sandbox started.
func (l *Loop) handle(msg jetstream.Msg) {
	started := false
	defer func() {
		if !started {
			l.cfg.Slots.Release()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.StartTimeout)
	defer cancel()
	var cmd schema.CreateCommand
	if err := json.Unmarshal(msg.Data(), &cmd); err != nil || !schema.ValidSandboxID(cmd.SandboxID) {
		data := msg.Data()
		l.log.Error("undecodable create command; dropping it", logkey.Error, err, "data", string(data[:min(len(data), 200)]))
		_ = msg.Term()
		return
	}
	log := l.log.With(logkey.SandboxID, cmd.SandboxID)
	rec, rev, ok, err := l.claim(ctx, cmd.SandboxID)
	if errors.Is(err, errNoRecord) {
		// The apiserver writes the record before the command, but a KV read may be served by a replica
		// that has not applied it yet: look again a little later before giving the command up.
		if md, merr := msg.Metadata(); merr == nil && md.NumDelivered < noRecordRetries {
			_ = msg.NakWithDelay(time.Duration(md.NumDelivered) * 200 * time.Millisecond)
			return
		}
		log.Warn("create command for a sandbox without a record; dropping it")
		_ = msg.Term()
		return
	}
	if errors.Is(err, errNotForMe) {
		// Another worker of the fleet can (the apiserver checked that one exists): hand it back.
		_ = msg.NakWithDelay(notForMeDelay)
		return
	}
	if errors.Is(err, errOwnerAlive) {
		// Another live worker is still starting it (this is a redelivery after its ack wait): look again
		// later; its ack ends the redeliveries, its death lets us take over.
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if err != nil {
		// The bus is in trouble: let the command come back soon, to us or to another worker.
		log.Warn("claim failed; command handed back", logkey.Error, err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if !ok {
		l.ack(ctx, msg, log)
		return
	}
	stop := l.keepInProgress(msg)
	err = l.cfg.Start(ctx, rec, rev)
	stop()
	if err != nil {
		log.Error("start sandbox failed", logkey.Error, err)
		l.fail(ctx, rec.ID, fmt.Sprintf("start failed: %v", err), log)
	} else {
		started = true
	}
	l.ack(ctx, msg, log)
}

// errNotForMe means Config.Accept refused the record.
var errNotForMe = errors.New("not for this worker")

// notForMeDelay is how long a refused command waits before it is delivered again (to any worker).
const notForMeDelay = 200 * time.Millisecond

// errOwnerAlive means another live worker holds the claim of a redelivered command.
var errOwnerAlive = errors.New("claimed by a live worker")

// workerAlive reports whether a worker's heartbeat key exists (it expires one TTL after the last beat).
func (l *Loop) workerAlive(ctx context.Context, id string) (bool, error) {
	_, err := l.cfg.Bus.Workers.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read heartbeat of %s: %w", id, err)
	}
	return true, nil
}

// errNoRecord means the command names a sandbox whose record was not found.
var errNoRecord = errors.New("no record")

// noRecordRetries is how many deliveries a command whose record is missing gets.
const noRecordRetries = 3

// claim moves the record pending → starting with this worker as owner. ok is false when the command is
// not (or no longer) for anyone to start: a duplicate, a redelivery, a cancelled create, another
// worker's claim.
func (l *Loop) claim(ctx context.Context, id string) (rec schema.Record, rev uint64, ok bool, err error) {
	for attempt := 0; attempt < 5; attempt++ {
		cur, curRev, err := l.cfg.Bus.GetRecord(ctx, id)
		if errors.Is(err, schema.ErrNotFound) {
			return rec, 0, false, errNoRecord
		}
		if err != nil {
			return rec, 0, false, err
		}
		var next schema.Record
		switch {
		case cur.State == schema.StatePending:
			if l.cfg.Accept != nil && !l.cfg.Accept(cur) {
				return rec, 0, false, errNotForMe
			}
			if next, err = cur.Transition(schema.StateStarting, ""); err != nil {
				return rec, 0, false, err
			}
		case cur.State == schema.StateStarting && cur.Worker != l.cfg.WorkerID:
			// Redelivered while another worker had claimed it: if that worker is gone (it crashed between
			// claim and ack), take the claim over, so the client's create still succeeds.
			alive, err := l.workerAlive(ctx, cur.Worker)
			if err != nil {
				return rec, 0, false, err
			}
			if alive {
				return rec, 0, false, errOwnerAlive
			}
			l.log.Info("taking over the claim of a vanished worker", logkey.SandboxID, id, "previous_worker", cur.Worker)
			next = cur
		default:
			return rec, 0, false, nil
		}
		next.Worker = l.cfg.WorkerID
		newRev, err := l.cfg.Bus.CompareAndSet(ctx, cur, curRev, next)
		if errors.Is(err, bus.ErrStale) {
			continue // re-read: another worker probably claimed it
		}
		if err != nil {
			return rec, 0, false, err
		}
		return next, newRev, true, nil
	}
	return rec, 0, false, nil
}

// fail marks a record this worker claimed as failed, unless something else has ended it meanwhile.
func (l *Loop) fail(ctx context.Context, id, reason string, log *slog.Logger) {
	errSkip := errors.New("skip")
	_, _, err := l.cfg.Bus.UpdateRecord(ctx, id, func(cur schema.Record) (schema.Record, error) {
		if cur.Worker != l.cfg.WorkerID || cur.State != schema.StateStarting {
			return cur, errSkip
		}
		next, err := cur.Transition(schema.StateFailed, reason)
		next.EndedAt = time.Now().UTC()
		return next, err
	})
	if err != nil && !errors.Is(err, errSkip) {
		log.Error("mark sandbox failed", logkey.Error, err)
	}
}

func (l *Loop) ack(ctx context.Context, msg jetstream.Msg, log *slog.Logger) {
	if err := msg.DoubleAck(ctx); err != nil {
		log.Warn("ack create command", logkey.Error, err)
	}
}

// keepInProgress tells JetStream the command is still being worked on until the returned stop is called.
func (l *Loop) keepInProgress(msg jetstream.Msg) (stop func()) {
	every := l.cfg.Bus.Config.CreateAckWait / 3
	if every <= 0 {
		every = 10 * time.Second
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
