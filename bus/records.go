package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"

	"fleetbox.dev/schema"
)

// ErrRecordNotFound means no record exists for a sandbox id.
var ErrRecordNotFound = schema.Errorf(http.StatusNotFound, "sandbox not found")

// GetRecord reads a sandbox record and its KV revision. It asks the bucket's stream leader, not a
// possibly lagging replica (KV's direct get may be served by followers), so a read after a write on
// another replica sees that write: claims and kills depend on it in a cluster.
func (b *Bus) GetRecord(ctx context.Context, id string) (schema.Record, uint64, error) {
	m, err := b.sandboxStream.GetLastMsgForSubject(ctx, kvSubject(schema.BucketSandboxes, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return schema.Record{}, 0, fmt.Errorf("get %s: %w", id, ErrRecordNotFound)
	}
	if err != nil {
		return schema.Record{}, 0, fmt.Errorf("get %s: %w", id, err)
	}
	if op := m.Header.Get(kvOperationHeader); op == "DEL" || op == "PURGE" || len(m.Data) == 0 {
		return schema.Record{}, 0, fmt.Errorf("get %s: %w", id, ErrRecordNotFound)
	}
	var r schema.Record
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return schema.Record{}, 0, fmt.Errorf("decode record %s: %w", id, err)
	}
	return r, m.Sequence, nil
}

// kvOperationHeader marks KV delete and purge markers in the bucket's stream.
const kvOperationHeader = "KV-Operation"

// kvSubject is the stream subject a KV key is stored under.
func kvSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// CreateRecord writes a new record; it fails if one exists, so a retried create cannot duplicate.
func (b *Bus) CreateRecord(ctx context.Context, r schema.Record) (uint64, error) {
	v, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("encode record %s: %w", r.ID, err)
	}
	rev, err := b.Sandboxes.Create(ctx, r.ID, v)
	if err != nil {
		return 0, fmt.Errorf("create record %s: %w", r.ID, err)
	}
	return rev, nil
}

// ErrStale is returned by CompareAndSet when the record changed since it was read.
var ErrStale = errors.New("record changed concurrently")

// CompareAndSet writes r if the stored revision is still rev, and only along the state machine from prev.
// It publishes the new record on the sandbox's event subject for waiters.
func (b *Bus) CompareAndSet(ctx context.Context, prev schema.Record, rev uint64, r schema.Record) (uint64, error) {
	if prev.State != r.State && !schema.CanTransition(prev.State, r.State) {
		return 0, &schema.TransitionError{ID: r.ID, From: prev.State, To: r.State}
	}
	v, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("encode record %s: %w", r.ID, err)
	}
	newRev, err := b.Sandboxes.Update(ctx, r.ID, v, rev)
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("update %s at revision %d: %w", r.ID, rev, ErrStale)
	}
	if err != nil {
		return 0, fmt.Errorf("update %s: %w", r.ID, err)
	}
	// Waiters also poll the bucket, so a lost event only costs latency.
	_ = b.NC.Publish(schema.SubjectEvents(r.ID), v)
	return newRev, nil
}

// UpdateRecord applies fn to the current record and writes the result by compare-and-set, re-reading and
// retrying when another writer got there first. fn may return an error to abort (returned as is).
func (b *Bus) UpdateRecord(ctx context.Context, id string, fn func(schema.Record) (schema.Record, error)) (schema.Record, uint64, error) {
	for attempt := 0; ; attempt++ {
		cur, rev, err := b.GetRecord(ctx, id)
		if err != nil {
			return schema.Record{}, 0, err
		}
		next, err := fn(cur)
		if err != nil {
			return cur, rev, err
		}
		newRev, err := b.CompareAndSet(ctx, cur, rev, next)
		if errors.Is(err, ErrStale) && attempt < 20 && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return cur, rev, err
		}
		return next, newRev, nil
	}
}

// ListRecords returns every sandbox record, in no particular order: from the cache when CacheRecords runs
// and has caught up with the bucket, else read in one pass of an ordered consumer (not a Get per key).
func (b *Bus) ListRecords(ctx context.Context) ([]schema.Record, error) {
	if b.cache != nil {
		info, err := b.sandboxStream.Info(ctx)
		if err == nil {
			if recs, ok := b.cache.list(ctx, info.State.LastSeq); ok {
				return recs, nil
			}
		}
	}
	return b.readRecords(ctx)
}

// readRecords reads every record from the bucket.
func (b *Bus) readRecords(ctx context.Context) ([]schema.Record, error) {
	w, err := b.Sandboxes.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	defer w.Stop()
	var out []schema.Record
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list sandboxes: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok || e == nil { // nil marks the end of the current values
				return out, nil
			}
			var r schema.Record
			if err := json.Unmarshal(e.Value(), &r); err != nil {
				return nil, fmt.Errorf("decode record %s: %w", e.Key(), err)
			}
			out = append(out, r)
		}
	}
}

// DeleteRecord removes a record (used to forget long-ended sandboxes).
func (b *Bus) DeleteRecord(ctx context.Context, id string, rev uint64) error {
	if err := b.Sandboxes.Delete(ctx, id, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("delete record %s: %w", id, err)
	}
	return nil
}
