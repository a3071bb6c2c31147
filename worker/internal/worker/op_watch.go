package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path"
	"syscall"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/fsops"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/watch"
)

var watchStartLine = []byte("{\"start\":{}}\n")

// watchDir checks a watch request's directory and starts watching it.
func (w *Worker) watchDir(id string, req schema.FsWatchRequest) (*sandbox, *watch.Watcher, func(watch.Event) schema.FsEvent, error) {
	sb, home, err := w.fsFor(id, req.User)
	if err != nil {
		return nil, nil, nil, err
	}
	t, err := sb.envd.fs.Resolve(expandPath(home, req.Path))
	if err != nil {
		return nil, nil, nil, err
	}
	fi, err := os.Stat(t.Host)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return nil, nil, nil, schema.Errorf(http.StatusNotFound, "path '%s' not found", t.Path)
	case err != nil:
		return nil, nil, nil, schema.Errorf(http.StatusInternalServerError, "stat '%s': %v", t.Path, unwrapPath(err))
	case !fi.IsDir():
		return nil, nil, nil, schema.Errorf(http.StatusBadRequest, "path '%s' is not a directory", t.Path)
	}
	wt, err := watch.New(t.Host, req.Recursive, sb.log)
	if err != nil {
		return nil, nil, nil, schema.Errorf(http.StatusInternalServerError, "watch '%s': %v", t.Path, unwrapPath(err))
	}
	convert := func(e watch.Event) schema.FsEvent {
		fe := schema.FsEvent{Name: e.Name, Type: e.Type}
		if req.IncludeEntry {
			if entry, err := sb.envd.fs.Entry(fsops.Target{Path: path.Join(t.Path, e.Name), Host: e.Host}); err == nil {
				fe.Entry = &entry
			}
		}
		return fe
	}
	return sb, wt, convert, nil
}

// opFsWatch watches a directory for as long as the stream's reader stays: {"start":{}} first, then
// {"filesystem":FsEvent} lines and keepalives.
func (w *Worker) opFsWatch(_ context.Context, id string, req schema.FsWatchRequest) (schema.Empty, error) {
	if !schema.ValidToken(req.Stream) {
		return schema.Empty{}, schema.Errorf(http.StatusBadRequest, "invalid stream id %q", req.Stream)
	}
	sb, wt, convert, err := w.watchDir(id, req)
	if err != nil {
		return schema.Empty{}, err
	}
	writer, err := bus.NewStreamWriter(w.bus.NC, id, req.Stream)
	if err != nil {
		wt.Close()
		return schema.Empty{}, err
	}
	if !sb.envd.addWatch(wt) {
		wt.Close()
		_ = writer.Close(nil)
		return schema.Empty{}, sandboxNotFound(id)
	}
	sb.envd.goStream(func() {
		defer sb.envd.removeWatch(wt)
		defer wt.Close()
		w.streamWatch(sb, wt, convert, writer, req.Stream)
	})
	return schema.Empty{}, nil
}

func (w *Worker) streamWatch(sb *sandbox, wt *watch.Watcher, convert func(watch.Event) schema.FsEvent, writer *bus.StreamWriter, stream string) {
	closeWith := func(err error) {
		if cerr := writer.Close(err); cerr != nil && !errors.Is(cerr, bus.ErrStreamCanceled) {
			sb.log.Debug("close watch stream", logkey.Stream, stream, logkey.Error, cerr)
		}
	}
	if _, err := writer.Write(watchStartLine); err != nil {
		closeWith(nil)
		return
	}
	keepalive := time.NewTimer(w.keepalive())
	defer keepalive.Stop()
	for {
		var line []byte
		select {
		case e, ok := <-wt.Events():
			if !ok {
				if err := wt.Err(); err != nil {
					closeWith(schema.Errorf(http.StatusInternalServerError, "%v", err))
				} else {
					closeWith(sandboxKilled(sb.id)) // only the sandbox's end closes a streaming watch
				}
				return
			}
			b, err := json.Marshal(struct {
				Filesystem schema.FsEvent `json:"filesystem"`
			}{convert(e)})
			if err != nil {
				continue
			}
			line = append(b, '\n')
		case <-keepalive.C:
			line = []byte("{\"keepalive\":{}}\n")
		case <-writer.Canceled():
			closeWith(nil)
			return
		}
		if _, err := writer.Write(line); err != nil {
			closeWith(nil)
			return
		}
		keepalive.Reset(w.keepalive())
	}
}

// opFsWatcherCreate starts a polling watcher and answers with its id.
func (w *Worker) opFsWatcherCreate(_ context.Context, id string, req schema.FsWatchRequest) (schema.WatcherRequest, error) {
	sb, wt, convert, err := w.watchDir(id, req)
	if err != nil {
		return schema.WatcherRequest{}, err
	}
	buf := watch.NewBuffer(wt, convert, maxWatcherEvents, sb.log)
	wid := "w" + schema.NewToken(8)
	e := sb.envd
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		buf.Close()
		return schema.WatcherRequest{}, sandboxNotFound(id)
	}
	e.watchers[wid] = buf
	e.mu.Unlock()
	return schema.WatcherRequest{WatcherID: wid}, nil
}

// opFsWatcherEvents returns (and forgets) the events a polling watcher collected since the last poll.
func (w *Worker) opFsWatcherEvents(_ context.Context, id string, req schema.WatcherRequest) ([]schema.FsEvent, error) {
	buf, err := w.watcher(id, req.WatcherID, false)
	if err != nil {
		return nil, err
	}
	events, err := buf.Drain(maxEventsPerPoll)
	if err != nil {
		return nil, schema.Errorf(http.StatusInternalServerError, "%v", err)
	}
	return events, nil
}

// opFsWatcherRemove stops a polling watcher.
func (w *Worker) opFsWatcherRemove(_ context.Context, id string, req schema.WatcherRequest) (schema.Empty, error) {
	buf, err := w.watcher(id, req.WatcherID, true)
	if err != nil {
		return schema.Empty{}, err
	}
	buf.Close()
	return schema.Empty{}, nil
}

func (w *Worker) watcher(id, wid string, remove bool) (*watch.Buffer, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return nil, err
	}
	e := sb.envd
	e.mu.Lock()
	defer e.mu.Unlock()
	buf := e.watchers[wid]
	if buf == nil {
		return nil, schema.Errorf(http.StatusNotFound, "watcher with id %s not found", wid)
	}
	if remove {
		delete(e.watchers, wid)
	}
	return buf, nil
}
