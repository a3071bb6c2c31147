package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"fleetbox.dev/schema"
)

// Config is the shape of the streams and buckets. The first process to start creates them with it;
// later processes bind to what exists (changing replicas of a live deployment is an operator's step).
type Config struct {
	// Replicas of the command stream and of every bucket: 1 for one server, 3 for a cluster.
	Replicas int
	// WorkerTTL is how long a worker's heartbeat lives without renewal.
	WorkerTTL time.Duration
	// CreateAckWait is how long a worker may hold a create command without acking or extending it
	// before it is redelivered: short, so a command held by a crashed worker comes back quickly (live
	// workers extend it every third of it while a start runs).
	CreateAckWait time.Duration
	// Logger, if set, hears about provisioning retries.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.WorkerTTL <= 0 {
		c.WorkerTTL = 10 * time.Second
	}
	if c.CreateAckWait <= 0 {
		c.CreateAckWait = 5 * time.Second
	}
	return c
}

// Bus bundles the connection and the JetStream handles both sides use.
type Bus struct {
	NC        *nats.Conn
	JS        jetstream.JetStream
	Sandboxes jetstream.KeyValue
	Workers   jetstream.KeyValue
	Leases    jetstream.KeyValue
	Snapshots jetstream.KeyValue
	Commands  jetstream.Stream
	Config    Config

	// sandboxStream is the stream behind Sandboxes, for reads served by its leader.
	sandboxStream jetstream.Stream
	// cache, if set (CacheRecords), serves ListRecords.
	cache *recordCache
}

// Open provisions (or binds to) the command stream, its consumer and the buckets, retrying with backoff
// while JetStream is unavailable (for example while a cluster elects its leader), until ctx ends.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Bus, error) {
	cfg = cfg.withDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	b := &Bus{NC: nc, JS: js, Config: cfg}
	bo := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(3*time.Second),
		backoff.WithMaxElapsedTime(0),
	), ctx)
	notify := func(err error, d time.Duration) {
		if cfg.Logger != nil {
			cfg.Logger.Warn("provision jetstream; retrying", "error", err, "retry_in", d)
		}
	}
	if err := backoff.RetryNotify(func() error { return b.provision(ctx) }, bo, notify); err != nil {
		return nil, fmt.Errorf("provision jetstream: %w", err)
	}
	return b, nil
}

func (b *Bus) provision(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg := b.Config
	var err error
	b.Commands, err = ensureStream(ctx, b.JS, jetstream.StreamConfig{
		Name:       schema.StreamCommands,
		Subjects:   []string{schema.SubjectCommands},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   cfg.Replicas,
		Discard:    jetstream.DiscardNew,
		MaxMsgs:    1_000_000,
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return err
	}
	if err := b.ensureCreateConsumer(ctx); err != nil {
		return err
	}
	if b.Sandboxes, err = ensureKV(ctx, b.JS, jetstream.KeyValueConfig{
		Bucket: schema.BucketSandboxes, History: 5, Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
	}); err != nil {
		return err
	}
	if b.sandboxStream, err = b.JS.Stream(ctx, "KV_"+schema.BucketSandboxes); err != nil {
		return fmt.Errorf("stream of bucket %s: %w", schema.BucketSandboxes, err)
	}
	if b.Workers, err = ensureKV(ctx, b.JS, jetstream.KeyValueConfig{
		Bucket: schema.BucketWorkers, History: 1, TTL: cfg.WorkerTTL, Replicas: cfg.Replicas,
		Storage: jetstream.FileStorage, LimitMarkerTTL: time.Minute,
	}); err != nil {
		return err
	}
	// The bucket and consumer may have been created by another process with other settings: what
	// exists wins, so every process heartbeats and extends on the same clock.
	if st, err := b.Workers.Status(ctx); err == nil && st.TTL() > 0 {
		b.Config.WorkerTTL = st.TTL()
	}
	if b.Leases, err = ensureKV(ctx, b.JS, jetstream.KeyValueConfig{
		Bucket: schema.BucketLeases, History: 1, TTL: cfg.WorkerTTL, Replicas: cfg.Replicas,
		Storage: jetstream.FileStorage, LimitMarkerTTL: time.Minute,
	}); err != nil {
		return err
	}
	if b.Snapshots, err = ensureKV(ctx, b.JS, jetstream.KeyValueConfig{
		Bucket: schema.BucketSnapshots, History: 1, Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
	}); err != nil {
		return err
	}
	return nil
}

// ensureCreateConsumer binds to the shared create consumer, creating it if it is missing. An existing
// consumer is never changed (its ack wait wins), so processes started with other flags cannot fight
// over it; its replicas follow the stream's.
func (b *Bus) ensureCreateConsumer(ctx context.Context) error {
	cons, err := b.Commands.Consumer(ctx, schema.ConsumerCreate)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = b.Commands.CreateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       schema.ConsumerCreate,
			FilterSubject: schema.SubjectCreate,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       b.Config.CreateAckWait,
			// Redeliveries are cheap (a KV read) and a command waits for a crashed claimer's heartbeat
			// to expire (one worker TTL) before another worker takes it over: allow a minute of them.
			MaxDeliver:    60,
			MaxWaiting:    4096,
			MaxAckPending: 10_000,
			Replicas:      b.Commands.CachedInfo().Config.Replicas,
		})
		if errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = b.Commands.Consumer(ctx, schema.ConsumerCreate)
		}
	}
	if err != nil {
		return fmt.Errorf("consumer %s: %w", schema.ConsumerCreate, err)
	}
	b.Config.CreateAckWait = cons.CachedInfo().Config.AckWait
	return nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	s, err = js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.Stream(ctx, cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

func ensureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}
