// Package system starts fleetbox as real processes on loopback for the bench, the load tester's smoke
// test and the end-to-end and chaos suites, and makes sure none outlives them.
//
//   - Start runs a whole deployment: the apiserver with its embedded NATS server and one worker, on free
//     ports in one data directory; Stop ends both, then kills whatever still refers to that directory.
//   - Fleet (for tests) runs apiservers and workers against NATS servers the test runs itself (a bustest
//     server or 3-node cluster), each stopped when the test ends; one can be killed and restarted.
//   - Proc is one such process in its own process group, with its output in a log file; WaitHealthy,
//     WaitCreate and FreePort are the waits and ports they use; Sweep and Watchdog the leak catchers.
//   - BuildBinaries and BuildOnce build the binaries once per test binary; AfterTests cleans up after them.
//
// It also reads process memory and CPU time from /proc for the bench. It must not import fleetbox's
// services (the load tester links it), nor package testing: tests hand it a TB.
package system

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Config says what Start runs.
type Config struct {
	APIServer string // path of the apiserver binary
	Worker    string // path of the worker binary
	Capacity  int    // worker -capacity; 0: the worker's default
	Python    string // worker -python; "": the worker's default
	LogLevel  string // -log-level of both; "": their default
	// Name names the run: the temporary directory fleetbox-NAME-*, the worker id NAME-worker-1 and the
	// prefix of the lines written to Log. Default "system".
	Name string
	Dir  string // data and logs; "": a new temporary directory, removed by a clean Stop unless Keep
	Keep bool
	// StopTimeout is how long Stop waits for each process after SIGTERM before it SIGKILLs it (default
	// 60 s: a worker drains its sandboxes first).
	StopTimeout time.Duration
	// Watchdog registers the processes and Dir with the test binary's watchdog, which cleans up if the
	// test binary dies; AfterTests must then run at its end.
	Watchdog bool
	Log      io.Writer // where the directory and, after a failure, the ends of the logs are reported; nil: nowhere
}

// System is a running deployment.
type System struct {
	APIURL  string // http://127.0.0.1:PORT, API and sandbox URL
	NATSURL string // nats://127.0.0.1:PORT (the apiserver's embedded server)
	APIKey  string // the only key the apiserver accepts, e2b_<32 hex>
	Dir     string

	cfg      Config
	ownDir   bool
	wd       *Watchdog
	api      *Proc
	worker   *Proc
	stopOnce sync.Once
	stopErr  error
}

// Start launches the apiserver, waits for /health, launches the worker and waits until a sandbox can be
// created. On error it stops (and reports, see Stop) everything it started.
func Start(ctx context.Context, cfg Config) (s *System, err error) {
	if cfg.Name == "" {
		cfg.Name = "system"
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 60 * time.Second
	}
	s = &System{cfg: cfg, Dir: cfg.Dir}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "fleetbox-"+cfg.Name+"-"); err != nil {
			return nil, err
		}
		s.ownDir = true
	}
	// Without symbolic links, so that the leak sweep compares like with like.
	if r, err := filepath.EvalSymlinks(s.Dir); err == nil {
		s.Dir = r
	}
	s.logf("working directory %s", s.Dir)
	defer func() {
		if err != nil {
			_ = s.Stop(true)
			s = nil
		}
	}()
	if cfg.Watchdog {
		if s.wd, err = sharedWatchdog(); err != nil {
			return s, err
		}
		s.wd.WatchDir(s.Dir)
	}
	key := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		return s, err
	}
	s.APIKey = "e2b_" + hex.EncodeToString(key)
	// Ports come from binding :0 and closing; another process could take one in between, so retry.
	for attempt := 1; attempt <= 3; attempt++ {
		if err = s.startAPIServer(ctx, attempt); err == nil {
			break
		}
		if s.api != nil {
			s.api.Terminate(5 * time.Second)
			s.api = nil
		}
	}
	if err != nil {
		return s, err
	}
	return s, s.startWorker(ctx)
}

func (s *System) logf(format string, a ...any) {
	if s.cfg.Log != nil {
		fmt.Fprintf(s.cfg.Log, s.cfg.Name+": "+format+"\n", a...)
	}
}

func (s *System) startAPIServer(ctx context.Context, attempt int) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	nport, err := FreePort()
	for err == nil && nport == port {
		nport, err = FreePort()
	}
	if err != nil {
		return err
	}
	s.APIURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.NATSURL = fmt.Sprintf("nats://127.0.0.1:%d", nport)
	args := []string{
		"-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"-nats-listen", fmt.Sprintf("127.0.0.1:%d", nport),
		"-data", filepath.Join(s.Dir, fmt.Sprintf("nats-%d", attempt)),
	}
	if s.cfg.LogLevel != "" {
		args = append(args, "-log-level", s.cfg.LogLevel)
	}
	s.api, err = StartProc(ProcConfig{Name: "apiserver", Bin: s.cfg.APIServer, Args: args,
		Env: append(CleanEnv(), "E2B_API_KEY="+s.APIKey), Log: filepath.Join(s.Dir, fmt.Sprintf("apiserver-%d.log", attempt)),
		Watchdog: s.wd})
	if err != nil {
		return err
	}
	_, err = WaitHealthy(ctx, s.APIURL, 60*time.Second, s.api)
	return err
}

func (s *System) startWorker(ctx context.Context) error {
	args := []string{"-nats", s.NATSURL, "-data", filepath.Join(s.Dir, "worker"), "-id", s.cfg.Name + "-worker-1"}
	if s.cfg.Capacity > 0 {
		args = append(args, "-capacity", fmt.Sprint(s.cfg.Capacity))
	}
	if s.cfg.Python != "" {
		args = append(args, "-python", s.cfg.Python)
	}
	if s.cfg.LogLevel != "" {
		args = append(args, "-log-level", s.cfg.LogLevel)
	}
	var err error
	s.worker, err = StartProc(ProcConfig{Name: "worker", Bin: s.cfg.Worker, Args: args,
		Log: filepath.Join(s.Dir, "worker.log"), Watchdog: s.wd})
	if err != nil {
		return err
	}
	return WaitCreate(ctx, s.APIURL, s.APIKey, 60*time.Second, s.worker, s.api)
}

// WorkerPID is the worker's process id.
func (s *System) WorkerPID() int { return s.worker.PID() }

// APIServerPID is the apiserver's process id.
func (s *System) APIServerPID() int { return s.api.PID() }

// Stop sends SIGTERM to the worker (which drains its sandboxes) and then to the apiserver, SIGKILLs either
// after Config.StopTimeout, then kills any process still referring to the directory and reports it as a
// leak; a process that exited early is an error too. If failed is set or Stop finds an error, the last
// lines of the logs go to Config.Log and the directory is kept; otherwise a directory Start made is
// removed unless Config.Keep. Only the first call does anything; later ones return its result.
func (s *System) Stop(failed bool) error {
	s.stopOnce.Do(func() {
		s.stopErr = s.stop()
		if failed || s.stopErr != nil {
			for _, p := range []*Proc{s.api, s.worker} {
				if p != nil {
					s.logf("---- last lines of %s (%s) ----\n%s", p.Name(), p.LogPath(), p.Tail(200))
				}
			}
			s.logf("logs and data kept in %s", s.Dir)
			return
		}
		if s.cfg.Keep {
			s.logf("kept %s", s.Dir)
			return
		}
		if s.ownDir {
			_ = os.RemoveAll(s.Dir)
		}
	})
	return s.stopErr
}

func (s *System) stop() error {
	var errs []error
	for _, p := range []*Proc{s.worker, s.api} {
		if p == nil {
			continue
		}
		if p.Exited() {
			errs = append(errs, fmt.Errorf("%s exited before the end: %v", p.Name(), p.ExitErr()))
		} else if !p.Terminate(s.cfg.StopTimeout) {
			errs = append(errs, fmt.Errorf("%s did not exit within %v of SIGTERM (killed)", p.Name(), s.cfg.StopTimeout))
		}
	}
	if leaked := Sweep(s.Dir, 5*time.Second); len(leaked) > 0 {
		errs = append(errs, fmt.Errorf("%d process(es) outlived the worker and the apiserver and were killed:\n  %s",
			len(leaked), strings.Join(leaked, "\n  ")))
	}
	return errors.Join(errs...)
}
