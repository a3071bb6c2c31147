// Command apiserver serves E2B's REST API and the sandbox data plane on one plain-HTTP origin. It runs an
// embedded NATS server with JetStream unless -nats names an external one.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"fleetbox.dev/apiserver/internal/gateway"
	"fleetbox.dev/apiserver/internal/handlers"
	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/apiserver/internal/reaper"
	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

type config struct {
	addr          string
	natsURL       string
	natsListen    string
	dataDir       string
	replicas      int
	apiKeys       []string
	createTimeout time.Duration
	workerTTL     time.Duration
	logLevel      string
}

func main() {
	var c config
	var apiKey string
	flag.StringVar(&c.addr, "addr", "127.0.0.1:3000", "HTTP listen address (API and data plane)")
	flag.StringVar(&c.natsURL, "nats", "", "URL of an external NATS cluster; empty runs an embedded server")
	flag.StringVar(&c.natsListen, "nats-listen", "127.0.0.1:4222", "listen address of the embedded NATS server, for workers")
	flag.StringVar(&c.dataDir, "data", ".data/nats", "JetStream store directory of the embedded NATS server")
	flag.IntVar(&c.replicas, "replicas", 1, "replicas of streams and buckets when this apiserver creates them")
	flag.StringVar(&apiKey, "api-key", os.Getenv("E2B_API_KEY"), "accepted API keys, comma-separated (default $E2B_API_KEY; generated if empty)")
	flag.DurationVar(&c.createTimeout, "create-timeout", 30*time.Second, "how long a create waits for a worker")
	flag.DurationVar(&c.workerTTL, "worker-ttl", 10*time.Second, "how long a worker heartbeat lives, when this apiserver creates the bucket")
	flag.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	flag.Parse()

	log := newLogger(c.logLevel)
	for _, k := range strings.Split(apiKey, ",") {
		if k = strings.TrimSpace(k); k != "" {
			c.apiKeys = append(c.apiKeys, k)
		}
	}
	if len(c.apiKeys) == 0 {
		c.apiKeys = []string{generateKey()}
		fmt.Fprintf(os.Stderr, "\nNo E2B_API_KEY set; generated one for this run:\n\n  export E2B_API_KEY=%s\n\n", c.apiKeys[0])
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		log.Error("apiserver stopped", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	connCfg := bus.ConnectConfig{URL: c.natsURL, Name: "apiserver", Logger: log}
	if c.natsURL == "" {
		ns, err := runEmbedded(c, log)
		if err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		connCfg.InProcess = ns
		log.Info("embedded NATS listening", "url", ns.ClientURL(), "store", c.dataDir)
	}

	// Serve at once: until the bus is open every request (and /health) answers 503, so load balancers
	// and clients see "not ready" instead of a refused connection while NATS is unreachable.
	var handler atomic.Pointer[http.Handler]
	notReady := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpjson.Error(w, nil, schema.Errorf(http.StatusServiceUnavailable, "not ready: connecting to NATS"))
	}))
	handler.Store(&notReady)
	srv := &http.Server{
		Addr:              c.addr,
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       650 * time.Second, // past the code interpreter's 640 s keep-alive
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.addr, err)
	}
	log.Info("apiserver listening", "addr", "http://"+ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	nc, err := bus.Connect(ctx, connCfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	b, err := bus.Open(ctx, nc, bus.Config{Replicas: c.replicas, WorkerTTL: c.workerTTL, Logger: log})
	if err != nil {
		return err
	}
	// Lists (the API's, the reaper's sweeps) read a watched copy of the records, not the whole bucket.
	b.CacheRecords(ctx)

	host, _ := os.Hostname()
	go reaper.New(b, reaper.Config{Holder: fmt.Sprintf("%s/%d", host, os.Getpid()), Log: log.With("subsystem", "reaper")}).Run(ctx)

	sandboxes := lifecycle.New(b, log)
	sandboxes.CreateTimeout = c.createTimeout
	control := handlers.Routes(handlers.Deps{
		Sandboxes: sandboxes,
		Log:       log,
		APIKeys:   c.apiKeys,
		Ready: func() error {
			if nc.Status() != nats.CONNECTED {
				return fmt.Errorf("NATS is %s", nc.Status())
			}
			return nil
		},
	})
	dispatch := gateway.New(sandboxes, log).Dispatch(control)
	// While NATS is unreachable every request fails fast with 503 instead of waiting for a timeout.
	ready := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := nc.Status(); st != nats.CONNECTED {
			httpjson.Error(w, nil, schema.Errorf(http.StatusServiceUnavailable, "not ready: NATS is %s", st))
			return
		}
		dispatch.ServeHTTP(w, r)
	}))
	handler.Store(&ready)
	log.Info("apiserver ready")

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func runEmbedded(c config, log *slog.Logger) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(c.natsListen)
	if err != nil {
		return nil, fmt.Errorf("-nats-listen %q: %w", c.natsListen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("-nats-listen port %q: %w", portStr, err)
	}
	return bus.RunEmbedded(bus.EmbeddedConfig{Host: host, Port: port, StoreDir: c.dataDir, Logger: log})
}

func generateKey() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return "e2b_" + hex.EncodeToString(b)
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
