// Package baseline measures what the machine itself costs, so the bench can state fleetbox's figures as
// ratios to them: starting a Python interpreter, a NATS request/reply round trip, and an HTTP round trip on
// loopback through the same tuned client the load tester uses.
package baseline

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"time"

	"github.com/nats-io/nats.go"

	"fleetbox.dev/loadtest/internal/client"
)

// PythonSpawn runs `python -c pass` n times, one after another, and times each run to its exit.
func PythonSpawn(ctx context.Context, python string, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		t := time.Now()
		cmd := exec.CommandContext(ctx, python, "-c", "pass")
		if err := cmd.Run(); err != nil {
			return out, fmt.Errorf("%s -c pass: %w", python, err)
		}
		out = append(out, time.Since(t))
	}
	return out, ctx.Err()
}

// NATSRoundTrip connects twice to the NATS server at url (a responder that echoes, and a requester, as the
// apiserver and a worker are two clients) and times n sequential 64-byte request/reply round trips.
func NATSRoundTrip(ctx context.Context, url string, n int) ([]time.Duration, error) {
	opts := []nats.Option{nats.Name("loadtest baseline"), nats.Timeout(5 * time.Second), nats.NoReconnect()}
	resp, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect responder: %w", err)
	}
	defer resp.Close()
	req, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect requester: %w", err)
	}
	defer req.Close()
	subject := "_loadtest.echo." + nats.NewInbox()[len(nats.InboxPrefix):]
	if _, err := resp.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		return nil, err
	}
	if err := resp.Flush(); err != nil {
		return nil, err
	}
	payload := make([]byte, 64)
	// Warm up the request mux and the connections.
	for i := 0; i < 50; i++ {
		if _, err := req.RequestWithContext(ctx, subject, payload); err != nil {
			return nil, fmt.Errorf("warm-up request: %w", err)
		}
	}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		t := time.Now()
		_, err := req.RequestWithContext(rctx, subject, payload)
		d := time.Since(t)
		cancel()
		if err != nil {
			return out, fmt.Errorf("request: %w", err)
		}
		out = append(out, d)
	}
	return out, ctx.Err()
}

// HTTPRoundTrip serves a 204 from an in-process server on a loopback port and times n sequential requests
// through the load tester's tuned client: the floor under any HTTP call of the tool.
func HTTPRoundTrip(ctx context.Context, n int) ([]time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	hc := &http.Client{Transport: client.NewTransport(1), Timeout: 5 * time.Second}
	url := "http://" + ln.Addr().String() + "/"
	do := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	for i := 0; i < 50; i++ {
		if err := do(); err != nil {
			return nil, err
		}
	}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		t := time.Now()
		if err := do(); err != nil {
			return out, err
		}
		out = append(out, time.Since(t))
	}
	return out, ctx.Err()
}
