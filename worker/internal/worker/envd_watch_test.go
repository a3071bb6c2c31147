package worker_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/worker"
)

// watchLine is one line of a watch stream.
type watchLine struct {
	Start      *struct{}       `json:"start"`
	Keepalive  *struct{}       `json:"keepalive"`
	Filesystem *schema.FsEvent `json:"filesystem"`
}

type watchStream struct{ lineReader }

func startWatch(t *testing.T, h *harness, id string, req schema.FsWatchRequest) (*watchStream, error) {
	t.Helper()
	stream, r := openStream(t, h.bus.NC, id)
	req.Stream = stream
	if _, err := op[schema.Empty](t, h.bus.NC, id, schema.OpFsWatch, req); err != nil {
		return nil, err
	}
	ws := &watchStream{lineReader{r: r}}
	var first watchLine
	if err := ws.line(t, &first); err != nil || first.Start == nil {
		t.Fatalf("first watch line %+v, %v", first, err)
	}
	return ws, nil
}

func (ws *watchStream) line(t *testing.T, v *watchLine) error {
	b, err := ws.next(t.Context())
	if err != nil {
		return err
	}
	*v = watchLine{}
	return json.Unmarshal(b, v)
}

// waitFor reads events until one with this name and type arrives.
func (ws *watchStream) waitFor(t *testing.T, name, typ string) schema.FsEvent {
	t.Helper()
	var seen []string
	for {
		var l watchLine
		if err := ws.line(t, &l); err != nil {
			t.Fatalf("waiting for %s %s after %v: %v", typ, name, seen, err)
		}
		if l.Filesystem == nil {
			continue
		}
		if l.Filesystem.Name == name && l.Filesystem.Type == typ {
			return *l.Filesystem
		}
		seen = append(seen, l.Filesystem.Type+" "+l.Filesystem.Name)
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC
	runSh(t, nc, id, "mkdir -p w/old")

	t.Run("recursive, with entries", func(t *testing.T) {
		ws, err := startWatch(t, h, id, schema.FsWatchRequest{Path: "w", Recursive: true, IncludeEntry: true})
		if err != nil {
			t.Fatal(err)
		}
		runSh(t, nc, id, "echo hi > w/a.txt")
		ev := ws.waitFor(t, "a.txt", schema.EventCreate)
		if ev.Entry == nil || ev.Entry.Path != "/home/user/w/a.txt" || ev.Entry.Type != schema.FileTypeFile {
			t.Fatalf("event entry %+v", ev.Entry)
		}
		ws.waitFor(t, "a.txt", schema.EventWrite)
		runSh(t, nc, id, "echo x > w/old/b.txt")
		ws.waitFor(t, "old/b.txt", schema.EventCreate)
		// A directory made after the watch started is watched as soon as its create event is out.
		runSh(t, nc, id, "mkdir w/new")
		ws.waitFor(t, "new", schema.EventCreate)
		runSh(t, nc, id, "touch w/new/c.txt && mv w/a.txt w/d.txt && rm w/d.txt")
		ws.waitFor(t, "new/c.txt", schema.EventCreate)
		ws.waitFor(t, "a.txt", schema.EventRename)
		ws.waitFor(t, "d.txt", schema.EventCreate)
		ws.waitFor(t, "d.txt", schema.EventRemove)
	})
	t.Run("not recursive", func(t *testing.T) {
		ws, err := startWatch(t, h, id, schema.FsWatchRequest{Path: "/home/user/w"})
		if err != nil {
			t.Fatal(err)
		}
		runSh(t, nc, id, "touch w/old/deep.txt w/top.txt")
		ev := ws.waitFor(t, "top.txt", schema.EventCreate)
		if ev.Entry != nil {
			t.Fatalf("entry without includeEntry: %+v", ev.Entry)
		}
	})
	t.Run("keepalive", func(t *testing.T) {
		h2 := newHarness(t)
		h2.startWorker(t, func(c *worker.Config) { c.KeepaliveInterval = 20 * time.Millisecond })
		id2 := h2.createRunning(t)
		ws, err := startWatch(t, h2, id2, schema.FsWatchRequest{Path: "/tmp"})
		if err != nil {
			t.Fatal(err)
		}
		var l watchLine
		if err := ws.line(t, &l); err != nil || l.Keepalive == nil {
			t.Fatalf("line %+v %v, want a keepalive", l, err)
		}
		// A quiet process's stream sends them too.
		ps := mustStart(t, h2.bus.NC, id2, schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "cat"}, Stdin: true})
		for i, want := range []string{"start", "keepalive"} {
			ev, err := ps.event(t.Context())
			if err != nil || (i == 0) != (ev.Start != nil) || (i == 1) != (ev.Keepalive != nil) {
				t.Fatalf("event %d %s %v, want %s", i, ev.raw, err, want)
			}
		}
		if _, err := op[schema.Empty](t, h2.bus.NC, id2, schema.OpProcessCloseStdin, schema.ProcessRequest{Process: schema.ProcessSelector{PID: ps.pid}}); err != nil {
			t.Fatal(err)
		}
		if res := ps.wait(t.Context()); res.err != nil || res.end() == nil {
			t.Fatalf("cat: %+v", res)
		}
	})
	t.Run("errors", func(t *testing.T) {
		runSh(t, nc, id, "touch afile")
		for _, tt := range []struct {
			path string
			code int
		}{{"nope", http.StatusNotFound}, {"afile", http.StatusBadRequest}} {
			_, err := startWatch(t, h, id, schema.FsWatchRequest{Path: tt.path})
			wantCode(t, err, tt.code, "")
			_, err = op[schema.WatcherRequest](t, nc, id, schema.OpFsWatcherCreate, schema.FsWatchRequest{Path: tt.path})
			wantCode(t, err, tt.code, "")
		}
	})
}

func TestPollingWatcher(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC
	runSh(t, nc, id, "mkdir p")
	wr, err := op[schema.WatcherRequest](t, nc, id, schema.OpFsWatcherCreate, schema.FsWatchRequest{Path: "p", Recursive: true})
	if err != nil || wr.WatcherID == "" {
		t.Fatalf("create watcher: %+v %v", wr, err)
	}
	runSh(t, nc, id, "mkdir p/sub && echo 1 > p/one.txt")
	var got []string
	bustest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		events, err := op[[]schema.FsEvent](t, nc, id, schema.OpFsWatcherEvents, wr)
		if err != nil {
			return err
		}
		for _, e := range events {
			got = append(got, e.Type+" "+e.Name)
		}
		if !slices.Contains(got, schema.EventCreate+" one.txt") || !slices.Contains(got, schema.EventCreate+" sub") {
			return fmt.Errorf("events so far: %v", got)
		}
		return nil
	})
	if _, err := op[schema.Empty](t, nc, id, schema.OpFsWatcherRemove, wr); err != nil {
		t.Fatal(err)
	}
	_, err = op[schema.Empty](t, nc, id, schema.OpFsWatcherRemove, wr)
	wantCode(t, err, http.StatusNotFound, "watcher with id")
	_, err = op[[]schema.FsEvent](t, nc, id, schema.OpFsWatcherEvents, wr)
	wantCode(t, err, http.StatusNotFound, "")
}
