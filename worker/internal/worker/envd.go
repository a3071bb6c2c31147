package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"path"
	"sync"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/fsops"
	"fleetbox.dev/worker/internal/procs"
	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/upload"
	"fleetbox.dev/worker/internal/watch"
)

// What envd's surface holds per sandbox, and how long things may wait.
const (
	// defaultUploadCommitTimeout is how long a received upload waits for its commit before it is removed.
	defaultUploadCommitTimeout = 2 * time.Minute
	// uploadIdleTimeout is how long an upload waits for its next chunk before it gives up.
	uploadIdleTimeout = 2 * time.Minute
	// maxWatcherEvents bounds the events a polling watcher buffers between polls.
	maxWatcherEvents = 10_000
	// maxEventsPerPoll bounds the events one poll returns, so the reply fits one bus message.
	maxEventsPerPoll = 1_000
	// streamsGrace bounds how long a kill waits for the streams of its sandbox to finish: a stream
	// whose reader stopped reading gives up on its own after the bus's stall timeout.
	streamsGrace = 2 * time.Second
	// defaultKeepalive is the idle time after which streams send a keepalive line.
	defaultKeepalive = 5 * time.Second
)

// envd is what a sandbox's envd surface holds: its processes, file system view, uploads and watches,
// and the goroutines that write their streams. All of it ends with the sandbox (close).
type envd struct {
	procs   *procs.Table
	fs      *fsops.FS
	uploads *upload.Registry
	envVars map[string]string
	log     *slog.Logger

	mu       sync.Mutex
	closed   bool
	watchers map[string]*watch.Buffer    // polling watchers by id
	watches  map[*watch.Watcher]struct{} // watches of open streams
	streams  sync.WaitGroup
}

func newEnvd(rs runtime.Sandbox, envVars map[string]string, commitTimeout time.Duration, log *slog.Logger) (*envd, error) {
	names := fsops.HostNames
	if n, ok := rs.(runtime.OwnerNamer); ok {
		names = func(uid, gid uint32) (string, string) {
			owner, group := n.OwnerNames(uid, gid)
			hostOwner, hostGroup := "", ""
			if owner == "" || group == "" {
				hostOwner, hostGroup = fsops.HostNames(uid, gid)
			}
			return cmp.Or(owner, hostOwner), cmp.Or(group, hostGroup)
		}
	}
	fs, err := fsops.New(rs.HostPath, names)
	if err != nil {
		return nil, fmt.Errorf("envd: %w", err)
	}
	return &envd{
		procs:    procs.New(log),
		fs:       fs,
		uploads:  upload.NewRegistry(commitTimeout, log),
		envVars:  maps.Clone(envVars),
		log:      log,
		watchers: map[string]*watch.Buffer{},
		watches:  map[*watch.Watcher]struct{}{},
	}, nil
}

// goStream runs a stream's writer in a goroutine that close waits for (briefly).
func (e *envd) goStream(fn func()) {
	e.streams.Go(fn)
}

// close kills the sandbox's processes, stops its watches, aborts its uploads and waits a little for
// the goroutines writing its streams. The sandbox's context is already cancelled.
func (e *envd) close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	watchers := e.watchers
	watches := e.watches
	e.watchers, e.watches = map[string]*watch.Buffer{}, map[*watch.Watcher]struct{}{}
	e.mu.Unlock()

	var errs []error
	if err := e.procs.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	for _, b := range watchers {
		b.Close()
	}
	for wt := range watches {
		wt.Close()
	}
	e.uploads.Close()
	done := make(chan struct{})
	go func() {
		e.streams.Wait()
		close(done)
	}()
	grace := time.NewTimer(streamsGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		e.log.Debug("streams still draining after the sandbox ended")
	case <-ctx.Done():
	}
	return errors.Join(errs...)
}

// addWatch registers a streaming watch so that close stops it; false once the sandbox is closing.
func (e *envd) addWatch(wt *watch.Watcher) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.watches[wt] = struct{}{}
	return true
}

func (e *envd) removeWatch(wt *watch.Watcher) {
	e.mu.Lock()
	delete(e.watches, wt)
	e.mu.Unlock()
}

// envdUser resolves the run-as user of a request to its name and home directory. envd knows the
// template's users; every sandbox here has "user" (the default) and "root".
func envdUser(name string) (user, home string, err error) {
	switch name {
	case "", runtime.DefaultUser:
		return runtime.DefaultUser, runtime.SandboxHome, nil
	case "root":
		return "root", "/root", nil
	}
	return "", "", schema.Errorf(http.StatusUnauthorized, "invalid username: '%s'", name)
}

// expandPath makes a request's path absolute: relative paths (and "") start at the user's home. The
// result is not cleaned, so that ".." above the root is still refused by fsops.
func expandPath(home, p string) string {
	switch {
	case p == "":
		return home
	case path.IsAbs(p):
		return p
	}
	return home + "/" + p
}

// sandboxKilled ends the streams of a sandbox that was killed under them.
func sandboxKilled(id string) error {
	return schema.Errorf(http.StatusServiceUnavailable, "sandbox %s was killed", id)
}

// keepalive is the idle interval of envd streams.
func (w *Worker) keepalive() time.Duration {
	if w.cfg.KeepaliveInterval > 0 {
		return w.cfg.KeepaliveInterval
	}
	return defaultKeepalive
}
