// Package bustest runs real NATS servers for tests: an in-process JetStream server on a loopback port
// with its store in a temporary directory, and helpers to connect to it and poll for conditions.
package bustest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"fleetbox.dev/bus"
)

// RunJetStream starts a JetStream server on 127.0.0.1 with a free port, stopped at the end of the test.
func RunJetStream(t testing.TB) *server.Server {
	t.Helper()
	ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Host: "127.0.0.1", Port: -1, StoreDir: t.TempDir(), ServerName: "test"})
	if err != nil {
		t.Fatalf("run jetstream: %v", err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// Connect opens a client connection to ns over TCP, closed at the end of the test.
func Connect(t testing.TB, ns *server.Server) *nats.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := bus.Connect(ctx, bus.ConnectConfig{URL: ns.ClientURL(), Name: t.Name()})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Open connects to ns and provisions the streams and buckets.
func Open(t testing.TB, ns *server.Server, cfg bus.Config) *bus.Bus {
	t.Helper()
	nc := Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, nc, cfg)
	if err != nil {
		t.Fatalf("open bus: %v", err)
	}
	return b
}

// Eventually polls fn every `every` until it returns nil, failing the test with fn's last error after total.
func Eventually(t testing.TB, total, every time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", total, err)
		}
		time.Sleep(every)
	}
}

// Errorf is fmt.Errorf, re-exported so polling closures read naturally.
var Errorf = fmt.Errorf

// ConnectURL opens a client connection to url (for example a Cluster's URL), closed with the test.
func ConnectURL(t testing.TB, url string) *nats.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := bus.Connect(ctx, bus.ConnectConfig{URL: url, Name: t.Name()})
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}
