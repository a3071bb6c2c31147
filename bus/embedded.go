package bus

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures a NATS server with JetStream running inside this process.
type EmbeddedConfig struct {
	// Host and Port to listen on for other processes (workers, the nats CLI). Port -1 picks a free port;
	// DontListen keeps it in-process only.
	Host       string
	Port       int
	DontListen bool
	// StoreDir is where JetStream keeps streams and buckets; they survive restarts.
	StoreDir   string
	ServerName string
	Logger     *slog.Logger
	// Cluster, if set, joins this server to a cluster of servers with routes to each other.
	Cluster *ClusterConfig
}

// ClusterConfig is the cluster part of an embedded server's configuration.
type ClusterConfig struct {
	Name string
	Host string
	Port int
	// Routes are nats-route:// URLs of every member (including this one is fine).
	Routes []string
}

// RunEmbedded starts a JetStream-enabled NATS server and waits until it accepts connections.
func RunEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	opts := &server.Options{
		ServerName: cfg.ServerName,
		Host:       cfg.Host,
		Port:       cfg.Port,
		DontListen: cfg.DontListen,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		// Allow bursts of big output chunks to queue for a moment without cutting a client off.
		MaxPending: 256 << 20,
	}
	if c := cfg.Cluster; c != nil {
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: c.Host, Port: c.Port}
		opts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
	}
	if opts.ServerName == "" {
		opts.ServerName = "fleetbox-embedded"
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("new nats server: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(&serverLogger{cfg.Logger.With("subsystem", "nats-server")}, false, false, false)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats server on %s:%d not ready after 10s", cfg.Host, cfg.Port)
	}
	return ns, nil
}

// serverLogger adapts slog to nats-server's printf-style Logger.
type serverLogger struct{ l *slog.Logger }

func (s *serverLogger) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Tracef(format string, v ...any)  {}
