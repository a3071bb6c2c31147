package watch

import (
	"log/slog"
	"sync"

	"fleetbox.dev/schema"
)

// Buffer collects a watcher's events until a client polls for them.
type Buffer struct {
	w       *Watcher
	convert func(Event) schema.FsEvent
	max     int
	log     *slog.Logger
	done    chan struct{}

	mu      sync.Mutex
	events  []schema.FsEvent
	dropped int
}

// NewBuffer starts collecting w's events, converted by convert, keeping at most max of them (later
// ones are dropped and counted until the client drains).
func NewBuffer(w *Watcher, convert func(Event) schema.FsEvent, max int, log *slog.Logger) *Buffer {
	if log == nil {
		log = slog.Default()
	}
	b := &Buffer{w: w, convert: convert, max: max, log: log, done: make(chan struct{})}
	go b.collect()
	return b
}

func (b *Buffer) collect() {
	defer close(b.done)
	for e := range b.w.Events() {
		fe := b.convert(e)
		b.mu.Lock()
		if len(b.events) < b.max {
			b.events = append(b.events, fe)
		} else {
			b.dropped++
		}
		b.mu.Unlock()
	}
}

// Drain returns and forgets at most n buffered events, oldest first, or the watcher's error once it
// failed and nothing is left.
func (b *Buffer) Drain(n int) ([]schema.FsEvent, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		b.log.Warn("watcher buffer full: events dropped", "dropped", b.dropped, "dir", b.w.root)
		b.dropped = 0
	}
	if len(b.events) == 0 {
		return []schema.FsEvent{}, b.w.Err()
	}
	k := min(n, len(b.events))
	out := b.events[:k:k]
	b.events = append([]schema.FsEvent(nil), b.events[k:]...)
	return out, nil
}

// Close stops the watcher and waits for the collector to finish.
func (b *Buffer) Close() {
	b.w.Close()
	<-b.done
}
