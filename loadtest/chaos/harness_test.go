// Package chaos holds the fault tests of the fleet: real apiserver and worker processes against real NATS
// servers (in this test process, so they can be stopped and restarted), killed and restarted while a
// client keeps using the system. Each test prints what it observed (times to detect, errors by kind).
package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/loadtest/internal/client"
	"fleetbox.dev/loadtest/internal/system"
	"fleetbox.dev/schema/e2b"
)

const apiKey = "e2b_0c4a05cafe0c4a05cafe"

func TestMain(m *testing.M) {
	code := m.Run()
	system.AfterTests()
	os.Exit(code)
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real servers")
	}
}

// fleet starts the apiservers and workers of a test against natsURL (see system.Fleet).
func fleet(t *testing.T, natsURL string) *system.Fleet { return system.NewFleet(t, natsURL, apiKey) }

// apiserver starts an apiserver with a heartbeat TTL of 3 s and debug logs, and waits until it is healthy.
func apiserver(f *system.Fleet, name string, extra ...string) *system.APIServer {
	return f.APIServer(name, append([]string{"-worker-ttl", "3s", "-log-level", "debug"}, extra...)...)
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := system.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func waitHealthy(t *testing.T, url string, within time.Duration) time.Duration {
	t.Helper()
	d, err := system.WaitHealthy(t.Context(), url, within)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newClient(url string) *client.Client { return client.New(url, url, apiKey, 45*time.Second, 32) }

// sandboxInfo is GET /sandboxes/{id}: the detail, or the error body and status.
func sandboxInfo(url, id string) (e2b.SandboxDetail, int, string) {
	req, _ := http.NewRequest(http.MethodGet, url+"/sandboxes/"+id, nil)
	req.Header.Set("X-API-KEY", apiKey)
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return e2b.SandboxDetail{}, 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var d e2b.SandboxDetail
	if resp.StatusCode == http.StatusOK {
		_ = json.Unmarshal(b, &d)
	}
	return d, resp.StatusCode, string(b)
}

// lifecycle runs create → run_code → kill once and returns the phase that failed, if any.
func lifecycle(ctx context.Context, c *client.Client) (string, error) {
	sb, err := c.Create(ctx, client.CreateOptions{Template: "base", Timeout: 120})
	if err != nil {
		return "create", err
	}
	if _, err := c.RunCode(ctx, sb, "1+1"); err != nil {
		_ = killRetrying(ctx, c, sb.SandboxID) // a client that gives up on a sandbox still ends it
		return "run_code", err
	}
	if err := killRetrying(ctx, c, sb.SandboxID); err != nil {
		return "kill", err
	}
	return "", nil
}

// killRetrying kills a sandbox, retrying a few times while the fleet recovers (404 means it is gone).
func killRetrying(ctx context.Context, c *client.Client, id string) error {
	var err error
	for attempt := range 5 {
		err = c.Kill(ctx, id)
		var ce *client.Error
		if err == nil || (errors.As(err, &ce) && ce.Status == http.StatusNotFound) {
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
	}
	return err
}

// sandboxProcesses lists pids whose environment names one of ids as their E2B_SANDBOX_ID (Linux).
func sandboxProcesses(ids map[string]bool) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sc.Split(splitNUL)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "E2B_SANDBOX_ID="); ok && ids[v] {
				pids = append(pids, pid)
				break
			}
		}
		f.Close()
	}
	return pids
}

func splitNUL(data []byte, atEOF bool) (int, []byte, error) {
	for i, b := range data {
		if b == 0 {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
