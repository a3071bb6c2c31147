package system

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago (another process may take it before
// it is used: starts that can collide retry).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Health returns the status of GET url/health, or 0 when the server cannot be reached.
func Health(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url + "/health")
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// WaitHealthy polls GET url/health every 50 ms until it answers 200 (503 means not ready yet) and returns
// how long that took. It gives up after within, when ctx ends, or as soon as one of procs exits; the error
// ends with the last lines of the procs' logs.
func WaitHealthy(ctx context.Context, url string, within time.Duration, procs ...*Proc) (time.Duration, error) {
	start := time.Now()
	last := "no answer"
	for time.Since(start) < within && ctx.Err() == nil {
		if err := exited(procs); err != nil {
			return 0, fmt.Errorf("%s before %s was healthy%s", err, url, logTails(procs))
		}
		switch code := Health(url); code {
		case http.StatusOK:
			return time.Since(start), nil
		case 0:
			last = "no answer"
		default:
			last = fmt.Sprint(code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s not healthy after %v (last: %s)%s", url, time.Since(start).Round(time.Millisecond), last, logTails(procs))
}

// WaitCreate creates a sandbox (POST /v2/sandboxes, template base) until one is made, which shows a worker
// has registered, and kills it again. It gives up after within, when ctx ends, on a 401, or as soon as one
// of procs exits.
func WaitCreate(ctx context.Context, apiURL, apiKey string, within time.Duration, procs ...*Proc) error {
	hc := &http.Client{Timeout: 15 * time.Second}
	deadline := time.Now().Add(within)
	backoff := 100 * time.Millisecond
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if err := exited(procs); err != nil {
			return fmt.Errorf("%s before a sandbox could be created%s", err, logTails(procs))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/v2/sandboxes",
			strings.NewReader(`{"templateID":"base","timeout":60,"metadata":{"fleetbox":"readiness-probe"}}`))
		req.Header.Set("X-API-KEY", apiKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			last = err.Error()
		} else {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusCreated:
				var sb struct {
					SandboxID string `json:"sandboxID"`
				}
				if err := json.Unmarshal(body, &sb); err != nil || sb.SandboxID == "" {
					return fmt.Errorf("readiness create: 201 with an unusable body %q", body)
				}
				killSandbox(hc, apiURL, apiKey, sb.SandboxID)
				return nil
			case http.StatusUnauthorized:
				return fmt.Errorf("readiness create refused the API key: %s %s", resp.Status, body)
			}
			last = fmt.Sprintf("%s %s", resp.Status, bytes.TrimSpace(body))
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
	return fmt.Errorf("no sandbox could be created within %v (last: %s)%s", within, last, logTails(procs))
}

func killSandbox(hc *http.Client, apiURL, apiKey, id string) {
	req, _ := http.NewRequest(http.MethodDelete, apiURL+"/sandboxes/"+id, nil)
	req.Header.Set("X-API-KEY", apiKey)
	if resp, err := hc.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// exited describes the first of procs that has exited.
func exited(procs []*Proc) error {
	for _, p := range procs {
		if p.Exited() {
			return fmt.Errorf("%s exited (%v)", p.Name(), p.ExitErr())
		}
	}
	return nil
}

func logTails(procs []*Proc) string {
	var b strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&b, "\n--- last lines of %s (%s):\n%s", p.Name(), p.LogPath(), p.Tail(60))
	}
	return b.String()
}
