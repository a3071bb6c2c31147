package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"fleetbox.dev/schema"
)

// A byte stream carries output that may be far larger than one NATS message (run_code output, command
// output, file contents) from a writer (the worker) to one reader (the apiserver), in order, over core
// NATS. Each chunk carries a sequence number; the last message carries the end marker and, if the
// stream failed, a *schema.Error. The reader grants credit as it consumes, and the writer never has more
// than Window unacknowledged chunks in flight, so a slow client slows the producer instead of filling
// memory or making NATS cut a connection as a slow consumer.
const (
	hdrSeq   = "Sbx-Seq"
	hdrEOF   = "Sbx-Eof"
	hdrError = "Sbx-Error"

	// DefaultChunkSize keeps chunks far below NATS's 1 MB default payload limit.
	DefaultChunkSize = 128 << 10
	// DefaultWindow is how many chunks may be in flight before the writer waits for credit.
	DefaultWindow = 32
	// DefaultStallTimeout is how long a writer waits for credit before giving up on its reader.
	DefaultStallTimeout = 30 * time.Second
)

// ErrStreamCanceled is returned by writes after the reader went away.
var ErrStreamCanceled = errors.New("stream canceled by reader")

// ErrStreamStalled is returned by a write that waited StallTimeout for credit.
var ErrStreamStalled = errors.New("stream reader gave no credit in time")

type credit struct {
	Seq    uint64 `json:"seq,omitempty"`
	Cancel bool   `json:"cancel,omitempty"`
}

// StreamWriter is the producing end of a byte stream. It is safe for use by one goroutine at a time.
type StreamWriter struct {
	nc           *nats.Conn
	data         string
	chunk        int
	window       uint64
	stallTimeout time.Duration
	sub          *nats.Subscription

	mu       sync.Mutex
	seq      uint64 // last chunk sent
	acked    uint64 // last chunk the reader consumed
	canceled bool
	closed   bool
	wake     chan struct{} // signalled on credit or cancel
	done     chan struct{} // closed on cancel
}

// NewStreamWriter opens the writing end of stream of sandbox id.
func NewStreamWriter(nc *nats.Conn, id, stream string) (*StreamWriter, error) {
	w := &StreamWriter{
		nc: nc, data: schema.SubjectStreamData(id, stream), chunk: DefaultChunkSize, window: DefaultWindow,
		stallTimeout: DefaultStallTimeout, wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	sub, err := nc.Subscribe(schema.SubjectStreamCredit(id, stream), w.onCredit)
	if err != nil {
		return nil, fmt.Errorf("subscribe credit of stream %s: %w", stream, err)
	}
	w.sub = sub
	return w, nil
}

func (w *StreamWriter) onCredit(m *nats.Msg) {
	var c credit
	if json.Unmarshal(m.Data, &c) != nil {
		return
	}
	w.mu.Lock()
	if c.Cancel && !w.canceled {
		w.canceled = true
		close(w.done)
	}
	if c.Seq > w.acked {
		w.acked = c.Seq
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Canceled is closed when the reader cancels the stream (its client went away).
func (w *StreamWriter) Canceled() <-chan struct{} { return w.done }

// Write sends p as one or more chunks, waiting for credit when the window is full. Chunk boundaries carry
// no meaning; a reader that needs lines splits them itself.
func (w *StreamWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), w.chunk)
		if err := w.send(p[:n], false, nil); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// Close ends the stream; a non-nil err reaches the reader as its error (a *schema.Error keeps its code).
func (w *StreamWriter) Close(err error) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	var se *schema.Error
	if err != nil {
		se = asSchemaError(err)
	}
	sendErr := w.send(nil, true, se)
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	_ = w.sub.Unsubscribe()
	return sendErr
}

func (w *StreamWriter) send(p []byte, eof bool, se *schema.Error) error {
	timer := time.NewTimer(w.stallTimeout)
	defer timer.Stop()
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return errors.New("write to closed stream")
		}
		if w.canceled {
			w.mu.Unlock()
			return ErrStreamCanceled
		}
		if eof || w.seq-w.acked < w.window {
			w.seq++
			seq := w.seq
			w.mu.Unlock()
			msg := &nats.Msg{Subject: w.data, Data: p, Header: nats.Header{hdrSeq: []string{strconv.FormatUint(seq, 10)}}}
			if eof {
				msg.Header.Set(hdrEOF, "1")
				if se != nil {
					b, _ := json.Marshal(se)
					msg.Header.Set(hdrError, string(b))
				}
			}
			if err := w.nc.PublishMsg(msg); err != nil {
				return fmt.Errorf("publish stream chunk: %w", err)
			}
			return nil
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-timer.C:
			return ErrStreamStalled
		}
	}
}

// StreamReader is the consuming end of a byte stream. Open it before asking the writer to start, and ask
// over the same connection: the server then sees the subscription before the request, so no chunk is
// published before it exists. A writer started any other way needs a Flush of the reader's connection
// first.
type StreamReader struct {
	nc          *nats.Conn
	credit      string
	sub         *nats.Subscription
	msgs        chan *nats.Msg
	idleTimeout time.Duration
	next        uint64 // next expected sequence
	consumed    uint64
	granted     uint64
	finished    bool
}

// OpenStream subscribes to stream of sandbox id. idleTimeout bounds the wait for any message (writers
// send keepalives); 0 means no bound besides the caller's context.
func OpenStream(nc *nats.Conn, id, stream string, idleTimeout time.Duration) (*StreamReader, error) {
	r := &StreamReader{
		nc: nc, credit: schema.SubjectStreamCredit(id, stream), msgs: make(chan *nats.Msg, DefaultWindow+8),
		idleTimeout: idleTimeout, next: 1,
	}
	sub, err := nc.ChanSubscribe(schema.SubjectStreamData(id, stream), r.msgs)
	if err != nil {
		return nil, fmt.Errorf("subscribe stream %s: %w", stream, err)
	}
	// Flow control bounds what is pending; these limits only guard against a misbehaving writer.
	_ = sub.SetPendingLimits(4*DefaultWindow, 64<<20)
	r.sub = sub
	return r, nil
}

// ErrStreamIdle is returned when no chunk arrived within the idle timeout: the writer is presumed dead.
var ErrStreamIdle = errors.New("stream idle: writer presumed gone")

// ErrStreamGap is returned when a chunk went missing (the stream cannot be trusted any more).
var ErrStreamGap = errors.New("stream chunk missing")

// Next returns the next chunk. It returns io.EOF after a clean end, the writer's *schema.Error after a
// failed end, and ErrStreamIdle, ErrStreamGap or ctx.Err() otherwise.
func (r *StreamReader) Next(ctx context.Context) ([]byte, error) {
	if r.finished {
		return nil, io.EOF
	}
	var idle <-chan time.Time
	if r.idleTimeout > 0 {
		t := time.NewTimer(r.idleTimeout)
		defer t.Stop()
		idle = t.C
	}
	var m *nats.Msg
	select {
	case m = <-r.msgs:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-idle:
		return nil, ErrStreamIdle
	}
	seq, _ := strconv.ParseUint(m.Header.Get(hdrSeq), 10, 64)
	if seq != r.next {
		r.finished = true
		return nil, fmt.Errorf("%w: got %d, want %d", ErrStreamGap, seq, r.next)
	}
	r.next++
	r.consumed = seq
	if m.Header.Get(hdrEOF) != "" {
		r.finished = true
		if e := m.Header.Get(hdrError); e != "" {
			var se schema.Error
			if json.Unmarshal([]byte(e), &se) == nil {
				return nil, &se
			}
			return nil, errors.New(e)
		}
		return nil, io.EOF
	}
	if r.consumed-r.granted >= DefaultWindow/4 {
		r.grant(credit{Seq: r.consumed})
	}
	return m.Data, nil
}

func (r *StreamReader) grant(c credit) {
	b, _ := json.Marshal(c)
	_ = r.nc.Publish(r.credit, b)
	if c.Seq > r.granted {
		r.granted = c.Seq
	}
}

// Close unsubscribes; if the stream did not finish, it tells the writer to stop.
func (r *StreamReader) Close() {
	if !r.finished {
		r.grant(credit{Cancel: true})
		r.finished = true
	}
	_ = r.sub.Unsubscribe()
}
