package worker

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/fsops"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/upload"
)

// opFileRead answers with a file's entry, then sends its bytes on the request's stream, chunk by
// chunk, and ends the stream. Exactly Size bytes are sent (the size when the file was opened), so a
// caller may announce the length before the bytes arrive.
func (w *Worker) opFileRead(_ context.Context, id string, req schema.FileReadRequest) (schema.EntryInfo, error) {
	if !schema.ValidToken(req.Stream) {
		return schema.EntryInfo{}, schema.Errorf(http.StatusBadRequest, "invalid stream id %q", req.Stream)
	}
	sb, home, err := w.fsFor(id, req.User)
	if err != nil {
		return schema.EntryInfo{}, err
	}
	t, err := sb.envd.fs.Resolve(expandPath(home, req.Path))
	if err != nil {
		return schema.EntryInfo{}, err
	}
	// Stat before open: opening a FIFO would block.
	fi, err := os.Stat(t.Host)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return schema.EntryInfo{}, schema.Errorf(http.StatusNotFound, "path '%s' does not exist", t.Path)
	case err != nil:
		return schema.EntryInfo{}, schema.Errorf(http.StatusInternalServerError, "stat '%s': %v", t.Path, unwrapPath(err))
	case fi.IsDir():
		return schema.EntryInfo{}, schema.Errorf(http.StatusBadRequest, "path '%s' is a directory", t.Path)
	case !fi.Mode().IsRegular():
		return schema.EntryInfo{}, schema.Errorf(http.StatusBadRequest, "path '%s' is not a regular file", t.Path)
	}
	f, err := os.Open(t.Host)
	if err != nil {
		return schema.EntryInfo{}, schema.Errorf(http.StatusInternalServerError, "open '%s': %v", t.Path, unwrapPath(err))
	}
	entry, err := sb.envd.fs.Entry(t)
	if err == nil {
		fi, err = f.Stat()
	}
	if err != nil {
		_ = f.Close()
		return schema.EntryInfo{}, err
	}
	entry.Size = fi.Size()
	writer, err := bus.NewStreamWriter(w.bus.NC, id, req.Stream)
	if err != nil {
		_ = f.Close()
		return schema.EntryInfo{}, err
	}
	sb.envd.goStream(func() {
		defer f.Close()
		streamFile(sb, io.LimitReader(f, entry.Size), writer, req.Stream, t.Path)
	})
	return entry, nil
}

// streamFile copies r to writer in chunks of the bus's chunk size and ends the stream.
func streamFile(sb *sandbox, r io.Reader, writer *bus.StreamWriter, stream, p string) {
	buf := make([]byte, bus.DefaultChunkSize)
	var end error
	for {
		if sb.ctx.Err() != nil {
			end = sandboxKilled(sb.id)
			break
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if _, werr := writer.Write(buf[:n]); werr != nil {
				sb.log.Debug("file stream reader gone", logkey.Stream, stream, logkey.Error, werr)
				break
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			end = schema.Errorf(http.StatusInternalServerError, "read '%s': %v", p, unwrapPath(err))
			break
		}
	}
	if err := writer.Close(end); err != nil && !errors.Is(err, bus.ErrStreamCanceled) {
		sb.log.Debug("close file stream", logkey.Stream, stream, logkey.Error, err)
	}
}

// opFileWriteBegin opens an upload: it subscribes to the request's stream, then answers; the caller
// writes the bytes to the stream and asks opFileWriteCommit for the result. Parents are created now;
// a path that cannot be written (a directory, beneath a file, outside the sandbox) fails here.
func (w *Worker) opFileWriteBegin(_ context.Context, id string, req schema.FileWriteRequest) (schema.Empty, error) {
	if !schema.ValidToken(req.Stream) {
		return schema.Empty{}, schema.Errorf(http.StatusBadRequest, "invalid stream id %q", req.Stream)
	}
	sb, home, err := w.fsFor(id, req.User)
	if err != nil {
		return schema.Empty{}, err
	}
	t, err := sb.envd.fs.Resolve(expandPath(home, req.Path))
	if err != nil {
		return schema.Empty{}, err
	}
	if t.Path == "/" {
		return schema.Empty{}, schema.Errorf(http.StatusBadRequest, "path '%s' is a directory", t.Path)
	}
	if fi, err := os.Stat(t.Host); err == nil && fi.IsDir() {
		return schema.Empty{}, schema.Errorf(http.StatusBadRequest, "path '%s' is a directory", t.Path)
	}
	owner := sb.fileOwner(req.User)
	if err := fsops.MkdirAll(filepath.Dir(t.Host), owner); err != nil {
		switch {
		case fsops.IsNoSpace(err):
			return schema.Empty{}, schema.Errorf(http.StatusInsufficientStorage, "not enough disk space to write %s", t.Path)
		case fsops.IsNotDir(err):
			return schema.Empty{}, schema.Errorf(http.StatusInternalServerError, "cannot write %s: a parent is not a directory", t.Path)
		}
		return schema.Empty{}, schema.Errorf(http.StatusInternalServerError, "create parents of %s: %v", t.Path, unwrapPath(err))
	}
	var md map[string]string
	for k, v := range req.Metadata {
		if md == nil {
			md = map[string]string{}
		}
		md[strings.ToLower(k)] = v
	}
	// The reader subscribes before the reply goes out, so no chunk can come before it listens.
	err = sb.envd.uploads.Begin(upload.Request{
		Stream: req.Stream, Host: t.Host, Path: t.Path, Metadata: md, Owner: owner,
		Entry: func() (schema.EntryInfo, error) { return sb.envd.fs.Entry(t) },
	}, func() (upload.Source, error) {
		return bus.OpenStream(w.bus.NC, id, req.Stream, uploadIdleTimeout)
	})
	if errors.Is(err, upload.ErrClosed) {
		return schema.Empty{}, sandboxNotFound(id)
	}
	return schema.Empty{}, err
}

// opFileWriteCommit waits for an upload's bytes, puts the file in place and describes it.
func (w *Worker) opFileWriteCommit(ctx context.Context, id string, req schema.FileWriteCommit) (schema.EntryInfo, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return schema.EntryInfo{}, err
	}
	return sb.envd.uploads.Commit(ctx, req.Stream)
}
