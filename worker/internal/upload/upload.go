// Package upload receives files written into a sandbox: each upload reads its bytes from a stream
// chunk by chunk into a temporary file next to its target (never the whole file in memory) and, when
// the client commits it, renames that file over the target. A reader of the target therefore sees the
// old file or the new one, never a part, and a failed upload leaves the old file as it was. Uploads
// that are never committed are removed after a timeout, and all of them when the registry closes.
package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/fsops"
)

// Source is the byte stream of one upload (a bus.StreamReader).
type Source interface {
	// Next returns the next chunk, io.EOF at the clean end, or the error that ended the stream.
	Next(ctx context.Context) ([]byte, error)
	Close()
}

// Request describes one upload.
type Request struct {
	// Stream identifies the upload for Commit.
	Stream string
	// Host is the target's host path; its directory exists. Path is its sandbox path, for messages.
	Host, Path string
	// Metadata is stored as the file's user metadata (fsops.WriteMetadata), where the file system can.
	Metadata map[string]string
	// Owner, if set, is given the file.
	Owner *fsops.Owner
	// Entry describes the target once committed.
	Entry func() (schema.EntryInfo, error)
}

// ErrClosed is returned by Begin after Close.
var ErrClosed = errors.New("upload registry closed")

// Registry holds the uploads of one sandbox.
type Registry struct {
	log           *slog.Logger
	commitTimeout time.Duration
	ctx           context.Context
	cancel        context.CancelFunc

	mu      sync.Mutex
	uploads map[string]*upload
	closed  bool
	wg      sync.WaitGroup
}

// NewRegistry returns a registry whose uploads wait at most commitTimeout for their commit once their
// bytes are in.
func NewRegistry(commitTimeout time.Duration, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Registry{log: log, commitTimeout: commitTimeout, ctx: ctx, cancel: cancel, uploads: map[string]*upload{}}
}

type upload struct {
	req      Request
	src      Source
	tmp      string
	received chan struct{} // closed when the bytes are in (or failed): err is then set
	err      error
	finished chan struct{} // closed by Commit: the upload no longer needs its temporary file kept

	mu    sync.Mutex
	state int
}

const (
	pending = iota
	committed
	expired
)

// Begin opens the upload's source with open (once no other upload uses the stream) and starts
// receiving it into a temporary file for req. The registry owns the source from then on.
func (r *Registry) Begin(req Request, open func() (Source, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if _, ok := r.uploads[req.Stream]; ok {
		return schema.Errorf(http.StatusConflict, "upload %s already exists", req.Stream)
	}
	src, err := open()
	if err != nil {
		return fmt.Errorf("open upload %s: %w", req.Stream, err)
	}
	u := &upload{req: req, src: src, received: make(chan struct{}), finished: make(chan struct{})}
	r.uploads[req.Stream] = u
	r.wg.Add(1)
	go r.run(u)
	return nil
}

// Commit waits (bounded by ctx) until the upload's bytes are in, puts the file in place and describes
// it, or returns why the upload failed.
func (r *Registry) Commit(ctx context.Context, stream string) (schema.EntryInfo, error) {
	r.mu.Lock()
	u := r.uploads[stream]
	r.mu.Unlock()
	if u == nil {
		return schema.EntryInfo{}, schema.Errorf(http.StatusNotFound, "upload %s not found", stream)
	}
	select {
	case <-u.received:
	case <-ctx.Done():
		return schema.EntryInfo{}, schema.Errorf(http.StatusGatewayTimeout, "upload of %s still in progress: %v", u.req.Path, ctx.Err())
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.state != pending {
		return schema.EntryInfo{}, schema.Errorf(http.StatusNotFound, "upload %s not found", stream)
	}
	u.state = committed
	defer close(u.finished)
	r.forget(u)
	if u.err != nil {
		return schema.EntryInfo{}, u.err
	}
	if err := os.Rename(u.tmp, u.req.Host); err != nil {
		_ = os.Remove(u.tmp)
		return schema.EntryInfo{}, renameError(u.req.Host, u.req.Path, err)
	}
	return u.req.Entry()
}

// Close aborts every upload, removes their temporary files and waits for their goroutines.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

func (r *Registry) forget(u *upload) {
	r.mu.Lock()
	if r.uploads[u.req.Stream] == u {
		delete(r.uploads, u.req.Stream)
	}
	r.mu.Unlock()
}

// run receives the bytes, then keeps the result until Commit takes it or the commit timeout passes.
func (r *Registry) run(u *upload) {
	defer r.wg.Done()
	u.err = u.receive(r.ctx, r.log)
	u.src.Close()
	close(u.received)
	timer := time.NewTimer(r.commitTimeout)
	defer timer.Stop()
	select {
	case <-u.finished:
		return
	case <-timer.C:
	case <-r.ctx.Done():
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.state != pending {
		return
	}
	u.state = expired
	r.forget(u)
	if u.tmp != "" && u.err == nil {
		_ = os.Remove(u.tmp)
	}
	if r.ctx.Err() == nil {
		r.log.Warn("upload never committed: removed", "path", u.req.Path, "stream", u.req.Stream)
	}
}

// receive copies the stream into a new temporary file beside the target; on failure it removes it.
func (u *upload) receive(ctx context.Context, log *slog.Logger) (err error) {
	dir, base := filepath.Split(u.req.Host)
	f, err := os.CreateTemp(dir, "."+base+".upload-*")
	if err != nil {
		return writeError(u.req.Path, err)
	}
	u.tmp = f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(u.tmp)
		}
	}()
	for {
		chunk, err := u.src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return streamError(ctx, u.req.Path, err)
		}
		if _, err := f.Write(chunk); err != nil {
			return writeError(u.req.Path, err)
		}
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(u.req.Host); err == nil && fi.Mode().IsRegular() {
		mode = fi.Mode().Perm() // a rewrite keeps the file's permissions
	}
	if err := f.Chmod(mode); err != nil {
		return writeError(u.req.Path, err)
	}
	if o := u.req.Owner; o != nil {
		if err := f.Chown(o.UID, o.GID); err != nil {
			return writeError(u.req.Path, err)
		}
	}
	if err := f.Close(); err != nil {
		return writeError(u.req.Path, err)
	}
	if len(u.req.Metadata) > 0 {
		if err := fsops.WriteMetadata(u.tmp, u.req.Metadata); err != nil {
			// The bytes matter more than their labels: keep the file, say what was lost.
			log.Warn("upload metadata not stored", "path", u.req.Path, "error", err)
		}
	}
	return nil
}

// streamError explains why the bytes stopped coming.
func streamError(ctx context.Context, p string, err error) error {
	var se *schema.Error
	switch {
	case errors.As(err, &se):
		return se // the writer's own error (its client went away, ...)
	case ctx.Err() != nil:
		return schema.Errorf(http.StatusServiceUnavailable, "upload of %s aborted: the sandbox is going away", p)
	}
	return schema.Errorf(http.StatusInternalServerError, "upload of %s interrupted: %v", p, err)
}

// writeError maps a failed write: 507 when the disk is full, 500 otherwise (host paths left out).
func writeError(p string, err error) error {
	if fsops.IsNoSpace(err) {
		return schema.Errorf(http.StatusInsufficientStorage, "not enough disk space to write %s", p)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return schema.Errorf(http.StatusInternalServerError, "write %s: %v", p, err)
}

// renameError maps a failed final rename: a directory at the target is a 400.
func renameError(host, p string, err error) error {
	if fi, serr := os.Stat(host); serr == nil && fi.IsDir() {
		return schema.Errorf(http.StatusBadRequest, "path '%s' is a directory", p)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		err = le.Err
	}
	return schema.Errorf(http.StatusInternalServerError, "write %s: %v", p, err)
}
