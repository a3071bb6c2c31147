// Package client is the load tester's own E2B client: the few control-plane calls (create, kill, list), the
// code interpreter's POST /execute (NDJSON) and envd's process.Process/Start (Connect protocol, JSON
// streaming envelopes), addressed with the single-origin routing headers. It works against any
// E2B-compatible URL, including E2B's cloud. Every call is bounded by the client's per-request timeout.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"fleetbox.dev/schema/e2b"
)

// Ports of the two in-sandbox services, named by the E2b-Sandbox-Port header.
const (
	EnvdPort            = "49983"
	CodeInterpreterPort = "49999"
)

// maxBody bounds every response body we read: the tool must not buffer a misbehaving server's stream.
const maxBody = 8 << 20

// Client talks to one E2B-compatible deployment.
type Client struct {
	APIURL     string // control plane, e.g. http://127.0.0.1:3000 or https://api.e2b.app
	SandboxURL string // data plane (envd and code interpreter), routed by headers; e.g. https://sandbox.e2b.app
	APIKey     string
	Timeout    time.Duration // per request, including reading the whole body; 0 = none
	HTTP       *http.Client
	UserAgent  string
}

// New returns a client with a transport sized for conns concurrent requests.
func New(apiURL, sandboxURL, apiKey string, timeout time.Duration, conns int) *Client {
	return &Client{
		APIURL:     strings.TrimRight(apiURL, "/"),
		SandboxURL: strings.TrimRight(sandboxURL, "/"),
		APIKey:     apiKey,
		Timeout:    timeout,
		HTTP:       &http.Client{Transport: NewTransport(conns)},
		UserAgent:  "fleetbox-loadtest/1",
	}
}

// NewTransport is tuned so the client is not the bottleneck: keep-alive on, enough idle connections per host
// for every concurrent request (so none is closed and re-dialled between requests), no transparent
// compression (the servers stream NDJSON and Connect envelopes), proxies only as the environment says
// (Go never proxies loopback).
func NewTransport(conns int) *http.Transport {
	if conns < 1 {
		conns = 1
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true, // over TLS (E2B cloud); loopback cleartext stays HTTP/1.1
		MaxIdleConns:          2*conns + 64,
		MaxIdleConnsPerHost:   2*conns + 64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        32 << 10,
	}
}

// CloseIdle closes idle keep-alive connections.
func (c *Client) CloseIdle() { c.HTTP.CloseIdleConnections() }

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.Timeout)
}

// CreateOptions are the create body's knobs the load tester sets.
type CreateOptions struct {
	Template string
	Timeout  int               // sandbox lifetime in seconds (E2B's "timeout"); 0 = server default
	Metadata map[string]string // tags every sandbox of a run so it can be listed and cleaned up
}

// Create calls POST /sandboxes (the route every SDK version and server has) with secure=true, so the answer
// carries an envd access token, and returns once the server answered 201.
func (c *Client) Create(ctx context.Context, o CreateOptions) (e2b.Sandbox, error) {
	var sb e2b.Sandbox
	secure := true
	body := e2b.NewSandbox{TemplateID: o.Template, Secure: &secure, Metadata: o.Metadata}
	if o.Timeout > 0 {
		t := o.Timeout
		body.Timeout = &t
	}
	b, err := json.Marshal(body)
	if err != nil {
		return sb, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.APIURL+"/sandboxes", bytes.NewReader(b))
	if err != nil {
		return sb, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.control(req)
	if err != nil {
		return sb, Classify("create", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return sb, Classify("create", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return sb, httpError("create", resp.StatusCode, rb)
	}
	if err := json.Unmarshal(rb, &sb); err != nil || sb.SandboxID == "" {
		return sb, &Error{Kind: KindProtocol, Op: "create", Msg: fmt.Sprintf("201 with a body that is not a sandbox: %.200q", rb)}
	}
	return sb, nil
}

// Kill calls DELETE /sandboxes/{id} and expects 204.
func (c *Client) Kill(ctx context.Context, id string) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.APIURL+"/sandboxes/"+url.PathEscape(id), nil)
	if err != nil {
		return err
	}
	resp, err := c.control(req)
	if err != nil {
		return Classify("kill", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return Classify("kill", err)
	}
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return httpError("kill", resp.StatusCode, rb)
	}
	return nil
}

// List pages through GET /v2/sandboxes (running and paused) filtered by metadata, at most maxPages pages.
func (c *Client) List(ctx context.Context, metadata map[string]string, maxPages int) ([]e2b.ListedSandbox, error) {
	var out []e2b.ListedSandbox
	next := ""
	for page := 0; page < maxPages; page++ {
		q := url.Values{}
		q.Set("limit", "100")
		if md := EncodeMetadata(metadata); md != "" {
			q.Set("metadata", md)
		}
		if next != "" {
			q.Set("nextToken", next)
		}
		got, tok, err := c.listPage(ctx, q)
		if err != nil {
			return out, err
		}
		out = append(out, got...)
		if tok == "" {
			return out, nil
		}
		next = tok
	}
	return out, &Error{Kind: KindProtocol, Op: "list", Msg: fmt.Sprintf("more than %d pages", maxPages)}
}

func (c *Client) listPage(ctx context.Context, q url.Values) ([]e2b.ListedSandbox, string, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.APIURL+"/v2/sandboxes?"+q.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.control(req)
	if err != nil {
		return nil, "", Classify("list", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, "", Classify("list", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", httpError("list", resp.StatusCode, rb)
	}
	var got []e2b.ListedSandbox
	if err := json.Unmarshal(rb, &got); err != nil {
		return nil, "", &Error{Kind: KindProtocol, Op: "list", Msg: "body is not a sandbox list: " + err.Error()}
	}
	return got, resp.Header.Get(e2b.HeaderNextToken), nil
}

// EncodeMetadata encodes a metadata filter as the SDKs do before the query encoding adds its own layer:
// key=value pairs joined by '&', each part query-escaped.
func EncodeMetadata(md map[string]string) string {
	if len(md) == 0 {
		return ""
	}
	v := url.Values{}
	for k, val := range md {
		v.Set(k, val)
	}
	return v.Encode()
}

func (c *Client) control(req *http.Request) (*http.Response, error) {
	req.Header.Set("X-API-KEY", c.APIKey)
	req.Header.Set("User-Agent", c.UserAgent)
	return c.HTTP.Do(req)
}

// dataPlane sets the single-origin routing headers of E2B's proxy (§1.3 of the protocol notes).
func (c *Client) dataPlane(req *http.Request, sb e2b.Sandbox, port string) {
	req.Header.Set(e2b.HeaderSandboxID, sb.SandboxID)
	req.Header.Set(e2b.HeaderSandboxPort, port)
	if sb.EnvdAccessToken != "" {
		req.Header.Set(e2b.HeaderAccessToken, sb.EnvdAccessToken)
	}
	if sb.TrafficAccessToken != nil && *sb.TrafficAccessToken != "" && port != EnvdPort {
		req.Header.Set("E2B-Traffic-Access-Token", *sb.TrafficAccessToken)
	}
	req.Header.Set("User-Agent", c.UserAgent)
}

func httpError(op string, status int, body []byte) error {
	msg := strings.TrimSpace(string(body))
	var eb e2b.Error
	if json.Unmarshal(body, &eb) == nil && eb.Message != "" {
		msg = eb.Message
	}
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return &Error{Kind: fmt.Sprintf("http %d", status), Op: op, Status: status, Msg: msg}
}
