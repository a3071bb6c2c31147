// Command worker runs sandboxes for a fleetbox deployment: it connects to NATS, claims create commands
// while it has capacity, runs the sandboxes on its runtime and serves their operations until SIGINT or
// SIGTERM, then drains (kills its sandboxes, marking them "worker drained") and exits.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/worker/internal/agent"
	"fleetbox.dev/worker/internal/logkey"
	"fleetbox.dev/worker/internal/worker"
)

func main() {
	// The bhyve runtime runs each process of a VM as this binary's agent client (see runtime/bhyve).
	if len(os.Args) > 1 && os.Args[1] == "agent-exec" {
		os.Exit(agent.ExecMain(os.Args[2:]))
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	id := fs.String("id", "", "worker id, stable across restarts (default: the host name and a hash of -data)")
	dataDir := fs.String("data", ".data/worker", "directory for sandboxes and worker state")
	capacity := fs.Int("capacity", 64, "most sandboxes this worker runs at once")
	minFree := fs.Int("min-free-memory", 256, "MiB of host memory to keep free: below it the worker stops claiming creates (0: no limit)")
	var rtFlags runtimeFlags
	rtFlags.register(fs)
	python := fs.String("python", "", "Python interpreter of code contexts, as the sandbox sees it (default: /usr/bin/python3 or python3 on PATH for the process runtime, "+jailPython+" in jails)")
	kernelStart := fs.String("kernel-start", string(worker.KernelLazy), "when a sandbox's default Python kernel starts: lazy (first run_code), background (right after create) or ready (before create answers)")
	zygote := fs.Bool("kernel-fork-server", true, "fork Python kernels from one pre-imported interpreter instead of starting one each time")
	pausedRetention := fs.Duration("paused-retention", 30*24*time.Hour, "how long a paused sandbox is kept (holding its slot and memory) before it is killed")
	replicas := fs.Int("replicas", 1, "replicas of streams and buckets if this worker is the first to create them")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *python == "" {
		*python = rtFlags.defaultPython()
	}
	ks, err := worker.ParseKernelStart(*kernelStart)
	if err != nil {
		return err
	}
	log, err := newLogger(*logLevel, *logFormat)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if *id == "" {
		*id = defaultID(abs)
	}
	// The worker adds worker_id to its own logger; the runtime and the connection log with it too.
	wlog := log.With(logkey.WorkerID, *id)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rt, err := rtFlags.newRuntime(abs, wlog)
	if err != nil {
		return err
	}
	nc, err := bus.Connect(ctx, bus.ConnectConfig{URL: *natsURL, Name: "worker " + *id, Logger: wlog})
	if err != nil {
		return err
	}
	defer nc.Close()
	b, err := bus.Open(ctx, nc, bus.Config{Replicas: *replicas, Logger: wlog})
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Config{
		ID: *id, Bus: b, Runtime: rt, Python: *python, Capacity: *capacity, MinFreeMemoryMB: *minFree, Version: version(), Logger: log, KernelStart: ks,
		KernelModuleDir: filepath.Join(abs, "kernel"),
		KernelZygote:    *zygote,
		PausedRetention: *pausedRetention,
	})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// hostPython prefers the system interpreter, which starts in about 11 ms; a pyenv shim found first on
// PATH costs about 150 ms per start.
func hostPython() string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	if p, err := exec.LookPath("python3"); err == nil {
		return p
	}
	return "python3"
}

// defaultID is the host name plus a short hash of the data directory: stable across restarts, and
// distinct for two workers on one host (which must not end each other's sandboxes on start-up).
func defaultID(dataDir string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	var b strings.Builder
	for _, r := range strings.ToLower(host) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	sum := sha256.Sum256([]byte(dataDir))
	return b.String() + "-" + hex.EncodeToString(sum[:4])
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("-log-format: %q is neither text nor json", format)
}

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	return "dev"
}
