// Command sbx-agent is the sandbox agent of bhyve guests (package agent): "sbx-agent serve" runs the
// processes the worker asks for over TCP, and "sbx-agent exec" is the client (the worker binary's
// agent-exec subcommand, for trying an agent by hand). It uses only the standard library, so that it
// builds for any guest: GOOS=freebsd GOARCH=amd64 CGO_ENABLED=0 go build ./cmd/sbx-agent.
//
//	sbx-agent serve [-listen [::]:49982] [-log-level info]
//	sbx-agent exec -addr HOST:PORT [-dir DIR] [-uid N -gid N] -- ARGV...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"fleetbox.dev/worker/internal/agent"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "exec" {
		os.Exit(agent.ExecMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "sbx-agent:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: sbx-agent serve [-listen ADDR] [-log-level LEVEL] | sbx-agent exec -addr HOST:PORT [-dir DIR] -- ARGV")

// run runs the serve subcommand until ctx ends; ready, if set, is told the listening address.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(net.Addr)) error {
	if len(args) == 0 || args[0] != "serve" {
		return errUsage
	}
	fs := flag.NewFlagSet("sbx-agent serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", net.JoinHostPort("::", strconv.Itoa(agent.DefaultPort)), "TCP address to listen on")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		return errUsage
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l}))
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Info("listening", "addr", lis.Addr().String(), "version", agent.Version)
	if ready != nil {
		ready(lis.Addr())
	}
	srv := &agent.Server{Logger: log}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	select {
	case err := <-done:
		srv.Close()
		return err
	case <-ctx.Done():
		log.Info("stopping: killing the processes that still run")
		srv.Close()
		<-done
		return nil
	}
}
