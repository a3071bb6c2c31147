// Package watch reports changes below a directory, as envd's WatchDir does: fsnotify (inotify on
// Linux, kqueue on FreeBSD) on the directory and, for a recursive watch, on every subdirectory,
// including those that appear later. Events name files relative to the watched directory. A Buffer
// keeps events for clients that poll (envd's CreateWatcher / GetWatcherEvents).
package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"

	"fleetbox.dev/schema"
)

// Event is one change.
type Event struct {
	// Name is the changed file relative to the watched directory, slash-separated ("a/b.txt").
	Name string
	// Type is one of schema.EventCreate, EventWrite, EventRemove, EventRename, EventChmod.
	Type string
	// Host is the changed file's host path.
	Host string
}

// Watcher watches one directory.
type Watcher struct {
	root      string
	recursive bool
	fw        *fsnotify.Watcher
	log       *slog.Logger
	events    chan Event
	stop      chan struct{}
	stopped   chan struct{} // closed when the loop has returned (and events is closed)
	once      sync.Once
	err       error // why the loop ended, if not Close; read after stopped
}

// New starts watching host directory root (and its subdirectories, if recursive).
func New(root string, recursive bool, log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.Default()
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("create watcher: %w", err)
	}
	w := &Watcher{
		root: filepath.Clean(root), recursive: recursive, fw: fw, log: log,
		events: make(chan Event, 256), stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	if err := w.add(w.root); err != nil {
		_ = fw.Close()
		return nil, err
	}
	go w.loop()
	return w, nil
}

// Events delivers the changes. It is closed when the watcher stops: after Close, or on a failure that
// Err then reports.
func (w *Watcher) Events() <-chan Event { return w.events }

// Err returns why the watcher stopped on its own, once Events is closed; nil after Close.
func (w *Watcher) Err() error {
	select {
	case <-w.stopped:
		return w.err
	default:
		return nil
	}
}

// Close stops the watcher and releases its descriptors. It is idempotent and waits for the watcher's
// goroutine to end.
func (w *Watcher) Close() {
	w.once.Do(func() {
		close(w.stop)
		_ = w.fw.Close()
	})
	<-w.stopped
}

// add watches dir and, for a recursive watcher, every directory below it (symlinks are not followed).
func (w *Watcher) add(dir string) error {
	if !w.recursive {
		if err := w.fw.Add(dir); err != nil {
			return fmt.Errorf("watch %s: %w", dir, err)
		}
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if err := w.fw.Add(p); err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return fmt.Errorf("watch %s: %w", p, err)
		}
		return nil
	})
}

func (w *Watcher) loop() {
	defer close(w.stopped)
	defer close(w.events)
	for {
		select {
		case <-w.stop:
			return
		case err, ok := <-w.fw.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn("file watch lost events", "dir", w.root, "error", err)
				continue
			}
			w.err = fmt.Errorf("watch %s: %w", w.root, err)
			return
		case e, ok := <-w.fw.Events:
			if !ok {
				return
			}
			if !w.deliver(e) {
				return
			}
		}
	}
}

// deliver turns one fsnotify event into one Event per operation, in envd's order, and starts watching
// a directory created below a recursive watch. It returns false once the watcher is stopping.
func (w *Watcher) deliver(e fsnotify.Event) bool {
	if w.recursive && e.Has(fsnotify.Create) {
		if fi, err := os.Lstat(e.Name); err == nil && fi.IsDir() {
			if err := w.add(e.Name); err != nil {
				w.log.Warn("watch new directory", "dir", e.Name, "error", err)
			}
		}
	}
	rel, err := filepath.Rel(w.root, e.Name)
	if err != nil {
		return true
	}
	rel = filepath.ToSlash(rel)
	for _, op := range []struct {
		op  fsnotify.Op
		typ string
	}{
		{fsnotify.Create, schema.EventCreate},
		{fsnotify.Rename, schema.EventRename},
		{fsnotify.Chmod, schema.EventChmod},
		{fsnotify.Write, schema.EventWrite},
		{fsnotify.Remove, schema.EventRemove},
	} {
		if !e.Has(op.op) {
			continue
		}
		select {
		case w.events <- Event{Name: rel, Type: op.typ, Host: e.Name}:
		case <-w.stop:
			return false
		}
	}
	return true
}
