package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"

	"fleetbox.dev/schema"
)

// cacheCatchUp bounds how long ListRecords waits for the cache to apply the bucket's latest write before
// it reads the bucket itself.
const cacheCatchUp = 2 * time.Second

// recordCache is a copy of the sandbox bucket kept by a watch (see CacheRecords).
type recordCache struct {
	mu      sync.Mutex
	recs    map[string]schema.Record
	applied uint64        // stream sequence of the last entry applied
	moved   chan struct{} // closed (and replaced) whenever applied moves or live changes
	live    bool          // the watch runs and has delivered the bucket's values
}

// CacheRecords keeps a copy of the sandbox bucket in memory, fed by a watch, until ctx ends. ListRecords
// then answers from the copy once it has applied the bucket's last write at the time of the call (one
// stream-info request to the stream's leader, instead of reading every record), so a list after a write
// sees it, on any replica. While the watch is down (it is restarted with backoff), ListRecords reads the
// bucket. Call it once, before the Bus is shared.
func (b *Bus) CacheRecords(ctx context.Context) {
	c := &recordCache{recs: map[string]schema.Record{}, moved: make(chan struct{})}
	b.cache = c
	go c.run(ctx, b)
}

func (c *recordCache) run(ctx context.Context, b *Bus) {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second),
		backoff.WithMaxElapsedTime(0),
	)
	for ctx.Err() == nil {
		began := time.Now()
		err := c.watch(ctx, b)
		c.setLive(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute {
			bo.Reset()
		}
		d := bo.NextBackOff()
		if b.Config.Logger != nil {
			b.Config.Logger.Warn("sandbox record cache: watch ended; restarting", "error", err, "retry_in", d)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// watch applies the bucket's values and then its updates until the watch ends.
func (c *recordCache) watch(ctx context.Context, b *Bus) error {
	w, err := b.Sandboxes.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Stop()
	fresh := map[string]schema.Record{} // the initial values, swapped in whole once delivered
	var applied uint64
	initial := true
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watch: updates closed")
			}
			if e == nil { // the end of the initial values
				c.mu.Lock()
				c.recs, c.applied, c.live = fresh, applied, true
				c.signalLocked()
				c.mu.Unlock()
				initial = false
				continue
			}
			if initial {
				apply(fresh, e)
				applied = e.Revision()
				continue
			}
			c.mu.Lock()
			apply(c.recs, e)
			c.applied = e.Revision()
			c.signalLocked()
			c.mu.Unlock()
		}
	}
}

// apply puts one bucket entry into recs: a record, or the removal of one.
func apply(recs map[string]schema.Record, e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		delete(recs, e.Key())
		return
	}
	var r schema.Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		delete(recs, e.Key()) // not a record: the direct read would fail on it too
		return
	}
	recs[e.Key()] = r
}

func (c *recordCache) setLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = live
	c.signalLocked()
}

func (c *recordCache) signalLocked() {
	close(c.moved)
	c.moved = make(chan struct{})
}

// list returns the cached records once they include every write up to the stream's sequence last; ok is
// false if the cache is down or does not catch up within cacheCatchUp.
func (c *recordCache) list(ctx context.Context, last uint64) (recs []schema.Record, ok bool) {
	deadline := time.NewTimer(cacheCatchUp)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		live, applied, moved := c.live, c.applied, c.moved
		if live && applied >= last {
			recs = make([]schema.Record, 0, len(c.recs))
			for _, r := range c.recs {
				recs = append(recs, r)
			}
			c.mu.Unlock()
			return recs, true
		}
		c.mu.Unlock()
		if !live {
			return nil, false
		}
		select {
		case <-moved:
		case <-deadline.C:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
}
