package system

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// TB is the part of testing.TB the test helpers use (*testing.T has it); the package does not import
// testing because the load tester links it.
type TB interface {
	Helper()
	Cleanup(func())
	Context() context.Context
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
	TempDir() string
}

// Fleet starts apiservers and workers for one test against NATS servers the test runs itself (bustest's
// JetStream server or cluster, which can be stopped and restarted in-process). Every process is stopped
// when the test ends, its log printed if the test failed, and then whatever still refers to Dir is killed.
type Fleet struct {
	Bins    Binaries
	NATSURL string // the -nats flag of every process: one URL, or a cluster's, comma-separated
	APIKey  string // the apiservers' E2B_API_KEY
	Dir     string // logs (NAME.log) and worker data (NAME/)

	t  TB
	wd *Watchdog
}

// StopGrace is how long a Fleet's cleanup waits after SIGTERM before it SIGKILLs a process group.
const StopGrace = 15 * time.Second

// NewFleet builds (once per test binary, see BuildBinaries) or finds the binaries and returns an empty
// fleet. The test binary's TestMain must call AfterTests.
func NewFleet(t TB, natsURL, apiKey string) *Fleet {
	t.Helper()
	bins, err := BuildBinaries()
	if err != nil {
		t.Fatalf("%v", err)
	}
	wd, err := sharedWatchdog()
	if err != nil {
		t.Fatalf("%v", err)
	}
	dir := t.TempDir()
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}
	wd.WatchDir(dir)
	f := &Fleet{Bins: bins, NATSURL: natsURL, APIKey: apiKey, Dir: dir, t: t, wd: wd}
	// Registered before any process, so it runs after they are all stopped.
	t.Cleanup(func() {
		if leaked := Sweep(dir, 5*time.Second); len(leaked) > 0 {
			t.Logf("killed %d process(es) that outlived the fleet:\n  %s", len(leaked), strings.Join(leaked, "\n  "))
		}
	})
	return f
}

// start starts a process with its log in Dir/NAME.log (env nil: CleanEnv) and stops it when the test ends
// (SIGTERM, SIGKILL of its group after StopGrace), printing the end of its log if the test failed.
func (f *Fleet) start(name, bin string, env []string, args ...string) *Proc {
	f.t.Helper()
	p, err := StartProc(ProcConfig{Name: name, Bin: bin, Args: args, Env: env, Log: filepath.Join(f.Dir, name+".log"), Watchdog: f.wd})
	if err != nil {
		f.t.Fatalf("%v", err)
	}
	f.t.Cleanup(func() {
		if !p.Exited() && !p.Terminate(StopGrace) {
			f.t.Logf("%s did not exit within %v of SIGTERM (killed)", name, StopGrace)
		}
		if f.t.Failed() {
			f.t.Logf("--- last lines of %s:\n%s", name, p.Tail(60))
		}
	})
	return p
}

// APIServer is an apiserver process of a Fleet.
type APIServer struct {
	*Proc
	URL string // http://127.0.0.1:PORT
}

// StartAPIServer starts an apiserver on a free loopback port with -nats NATSURL and flags, without waiting
// for it.
func (f *Fleet) StartAPIServer(name string, flags ...string) *APIServer {
	f.t.Helper()
	port, err := FreePort()
	if err != nil {
		f.t.Fatalf("%v", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{"-addr", addr, "-nats", f.NATSURL}, flags...)
	p := f.start(name, f.Bins.APIServer, append(CleanEnv(), "E2B_API_KEY="+f.APIKey), args...)
	return &APIServer{Proc: p, URL: "http://" + addr}
}

// APIServer starts an apiserver (see StartAPIServer) and waits up to 60 s until it is healthy.
func (f *Fleet) APIServer(name string, flags ...string) *APIServer {
	f.t.Helper()
	a := f.StartAPIServer(name, flags...)
	if _, err := WaitHealthy(f.t.Context(), a.URL, 60*time.Second, a.Proc); err != nil {
		f.t.Fatalf("%v", err)
	}
	return a
}

// Worker is a worker process of a Fleet.
type Worker struct {
	*Proc
	DataDir string // its -data: Dir/NAME
}

// Worker starts a worker with -id name, -capacity capacity, its own data directory and flags. It does not
// wait for the worker to register.
func (f *Fleet) Worker(name string, capacity int, flags ...string) *Worker {
	f.t.Helper()
	data := filepath.Join(f.Dir, name)
	args := append([]string{"-nats", f.NATSURL, "-id", name, "-data", data, "-capacity", fmt.Sprint(capacity)}, flags...)
	return &Worker{Proc: f.start(name, f.Bins.Worker, nil, args...), DataDir: data}
}
