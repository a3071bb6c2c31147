package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/loadtest/internal/client"
	"fleetbox.dev/loadtest/internal/system"
	"fleetbox.dev/schema/e2b"
)

// churn runs lifecycles from n goroutines against the given URLs in turn until stop is closed, and
// counts outcomes by failed phase. retries is how often a failed lifecycle is tried again (the retry
// E2B's Python SDK does by itself for 502/503/504).
type churn struct {
	done     chan struct{}
	mu       sync.Mutex
	ok       int
	failures map[string]int
	samples  []string
}

func runChurn(ctx context.Context, urls []string, n, retries int, stop <-chan struct{}) *churn {
	c := &churn{failures: map[string]int{}, done: make(chan struct{})}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newClient(urls[i%len(urls)])
			for {
				select {
				case <-stop:
					return
				default:
				}
				var phase string
				var err error
				for attempt := 0; attempt <= retries; attempt++ {
					if phase, err = lifecycle(ctx, cl); err == nil {
						break
					}
					time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
				}
				c.mu.Lock()
				if err == nil {
					c.ok++
				} else {
					c.failures[phase]++
					if len(c.samples) < 5 {
						c.samples = append(c.samples, fmt.Sprintf("%s: %v", phase, err))
					}
				}
				c.mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(c.done) }()
	return c
}

func (c *churn) wait() { <-c.done }

func (c *churn) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d lifecycles ok, failures by phase %v, samples %q", c.ok, c.failures, c.samples)
}

// kill -9 of a worker: its sandboxes are reported gone with a reason within a bound set by the heartbeat
// TTL, the rest of the fleet keeps serving, and the restarted worker cleans up what it left behind.
func TestWorkerKill9(t *testing.T) {
	skipShort(t)
	t.Parallel()
	ns := bustest.RunJetStream(t)
	f := fleet(t, ns.ClientURL())
	url := apiserver(f, "apiserver").URL
	victim := f.Worker("victim", 4)
	f.Worker("survivor", 40)
	ctx := t.Context()
	cl := newClient(url)

	// Fill the victim: create until it owns some sandboxes (pull-when-free spreads them).
	owned := map[string]bool{}
	var others []string
	for i := 0; i < 40 && len(owned) < 3; i++ {
		sb, err := cl.Create(ctx, client.CreateOptions{Template: "base", Timeout: 300})
		if err != nil {
			t.Fatal(err)
		}
		d, _, _ := sandboxInfo(url, sb.SandboxID)
		if d.ClientID == "victim" {
			// Run code, so the sandbox has processes for the crash to leave behind.
			if _, err := cl.RunCode(ctx, sb, "x = 1"); err != nil {
				t.Fatal(err)
			}
			owned[sb.SandboxID] = true
		} else {
			others = append(others, sb.SandboxID)
		}
	}
	if len(owned) == 0 {
		t.Fatal("the victim worker never got a sandbox")
	}
	stop := make(chan struct{})
	ch := runChurn(ctx, []string{url}, 4, 0, stop)
	time.Sleep(time.Second)

	killedAt := time.Now()
	victim.Kill()
	detect := map[string]time.Duration{}
	deadline := killedAt.Add(60 * time.Second)
	for len(detect) < len(owned) && time.Now().Before(deadline) {
		for id := range owned {
			if _, ok := detect[id]; ok {
				continue
			}
			if _, code, body := sandboxInfo(url, id); code == http.StatusNotFound {
				if !strings.Contains(body, "worker lost") {
					t.Errorf("sandbox %s gone without the reason: %s", id, body)
				}
				detect[id] = time.Since(killedAt)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	ch.wait()
	if len(detect) < len(owned) {
		t.Fatalf("only %d of %d sandboxes of the killed worker reported gone after 60 s", len(detect), len(owned))
	}
	var worst time.Duration
	for _, d := range detect {
		worst = max(worst, d)
	}
	t.Logf("kill -9 of a worker (heartbeat TTL 3 s): its %d sandboxes reported lost after at most %v", len(owned), worst)
	t.Logf("churn during the kill: %s", ch)
	ch.mu.Lock()
	if ch.failures["create"] > 0 {
		t.Errorf("creates failed during a worker crash: %s", ch.samples)
	}
	ch.mu.Unlock()

	// The rest of the fleet still serves.
	for _, id := range others[:min(len(others), 3)] {
		if _, code, body := sandboxInfo(url, id); code != http.StatusOK {
			t.Errorf("sandbox %s on the survivor: %d %s", id, code, body)
		}
	}
	if _, err := lifecycle(ctx, cl); err != nil {
		t.Errorf("lifecycle after the crash: %v", err)
	}

	// The crashed worker left processes and directories; its restart removes them.
	if left := sandboxProcesses(owned); len(left) == 0 {
		t.Errorf("no processes of the killed worker's sandboxes left after kill -9: the cleanup check proves nothing")
	}
	if err := victim.Restart(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(victim.DataDir, "sandboxes")
	bustest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if left := sandboxProcesses(owned); len(left) > 0 {
			return fmt.Errorf("processes of the crashed worker's sandboxes still run: %v", left)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if owned[e.Name()] {
				return fmt.Errorf("directory of sandbox %s still there", e.Name())
			}
		}
		return nil
	})
}

// Restarting an apiserver under load: clients of the other replica see no error and every record
// survives, because all state lives in JetStream.
func TestAPIServerRestart(t *testing.T) {
	skipShort(t)
	t.Parallel()
	ns := bustest.RunJetStream(t)
	f := fleet(t, ns.ClientURL())
	first := apiserver(f, "apiserver-1")
	url1, url2 := first.URL, apiserver(f, "apiserver-2").URL
	f.Worker("worker", 40)
	ctx := t.Context()

	sb, err := newClient(url1).Create(ctx, client.CreateOptions{Template: "base", Timeout: 300})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(url1).RunCode(ctx, sb, "x = 41"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	ch := runChurn(ctx, []string{url2}, 4, 0, stop)
	time.Sleep(time.Second)
	first.Kill()
	if err := first.Restart(); err != nil {
		t.Fatal(err)
	}
	ready := waitHealthy(t, url1, 60*time.Second)
	time.Sleep(time.Second)
	close(stop)
	ch.wait()
	t.Logf("apiserver-1 killed and restarted (ready %v after start); churn on apiserver-2 meanwhile: %s", ready, ch)
	ch.mu.Lock()
	if len(ch.failures) > 0 || ch.ok == 0 {
		t.Errorf("clients of the other replica saw errors: %v %q", ch.failures, ch.samples)
	}
	ch.mu.Unlock()
	// State made through the restarted replica is intact and usable through both.
	for _, url := range []string{url1, url2} {
		ex, err := newClient(url).RunCode(ctx, sb, "x + 1")
		if err != nil || ex.Text != "42" {
			t.Errorf("run_code through %s after the restart: %q %v", url, ex.Text, err)
		}
	}
	if err := newClient(url1).Kill(ctx, sb.SandboxID); err != nil {
		t.Error(err)
	}
}

// NATS down at start and for a while: both services wait with backoff, /health says not ready, and
// everything recovers by itself when NATS returns; records survive in JetStream's store.
func TestNATSOutage(t *testing.T) {
	skipShort(t)
	t.Parallel()
	port := freePort(t)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", port)
	store := t.TempDir()
	runNATS := func() func() {
		ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Host: "127.0.0.1", Port: port, StoreDir: store, ServerName: "outage"})
		if err != nil {
			t.Fatal(err)
		}
		return func() { ns.Shutdown(); ns.WaitForShutdown() }
	}

	// Start both services before NATS exists.
	f := fleet(t, natsURL)
	url := f.StartAPIServer("apiserver", "-worker-ttl", "3s").URL
	f.Worker("worker", 20)
	bustest.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		if code := system.Health(url); code != http.StatusServiceUnavailable {
			return fmt.Errorf("health %d while NATS is down, want 503", code)
		}
		return nil
	})
	time.Sleep(time.Second)
	if code := system.Health(url); code != http.StatusServiceUnavailable {
		t.Fatalf("health %d while NATS is down, want 503", code)
	}
	stopNATS := runNATS()
	up := waitHealthy(t, url, 30*time.Second)
	ctx := t.Context()
	cl := newClient(url)
	sb := mustCreate(t, ctx, cl)
	if _, err := cl.RunCode(ctx, sb, "y = 6 * 7"); err != nil {
		t.Fatal(err)
	}
	t.Logf("NATS started late: apiserver healthy %v after NATS came up", up)

	// NATS goes away for a while.
	stopNATS()
	bustest.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		if code := system.Health(url); code != http.StatusServiceUnavailable {
			return fmt.Errorf("health %d during the outage, want 503", code)
		}
		return nil
	})
	short := client.New(url, url, apiKey, 5*time.Second, 4)
	began := time.Now()
	_, err := short.Create(ctx, client.CreateOptions{Template: "base"})
	if err == nil {
		t.Fatal("create succeeded with NATS down")
	}
	if !strings.Contains(err.Error(), "503") {
		t.Errorf("create during the outage: %v, want a 503", err)
	}
	t.Logf("create during the outage failed after %v: %v", time.Since(began).Round(time.Millisecond), err)
	time.Sleep(2 * time.Second)
	restartedAt := time.Now()
	defer runNATS()()
	waitHealthy(t, url, 30*time.Second)
	// The worker reconnects and resubscribes: the sandbox created before the outage still answers.
	var ex client.Execution
	bustest.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		ex, err = cl.RunCode(ctx, sb, "y")
		return err
	})
	if ex.Text != "42" {
		t.Fatalf("state after the outage: %q", ex.Text)
	}
	bustest.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		_, err := lifecycle(ctx, cl)
		return err
	})
	t.Logf("NATS back: full lifecycle works again %v after its restart", time.Since(restartedAt).Round(time.Millisecond))
}

// mustCreate creates a sandbox, retrying while the fleet is still coming up.
func mustCreate(t *testing.T, ctx context.Context, cl *client.Client) e2b.Sandbox {
	t.Helper()
	var sb e2b.Sandbox
	bustest.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		var err error
		sb, err = cl.Create(ctx, client.CreateOptions{Template: "base", Timeout: 300})
		return err
	})
	return sb
}

// A 3-node NATS cluster with R3 streams and buckets, two apiservers and two workers under churn; one NATS
// node stops in the middle and comes back. With the documented client retry (3 tries, as E2B's Python
// SDK does for 502/503/504), no lifecycle fails and no record is lost.
func TestClusterChurn(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := bustest.RunCluster(t, 3)
	f := fleet(t, c.URL())
	url1 := apiserver(f, "apiserver-1", "-replicas", "3").URL
	url2 := apiserver(f, "apiserver-2", "-replicas", "3").URL
	f.Worker("worker-1", 30)
	f.Worker("worker-2", 30)
	ctx := t.Context()

	stop := make(chan struct{})
	ch := runChurn(ctx, []string{url1, url2}, 4, 3, stop)
	time.Sleep(4 * time.Second)
	c.Stop(1)
	stoppedAt := time.Now()
	time.Sleep(8 * time.Second)
	c.Restart(1)
	t.Logf("NATS node 2 was down for %v", time.Since(stoppedAt).Round(time.Millisecond))
	time.Sleep(4 * time.Second)
	close(stop)
	ch.wait()
	t.Logf("churn across 2 apiservers and 2 workers with a NATS node stopped: %s", ch)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if len(ch.failures) > 0 || ch.ok == 0 {
		t.Errorf("lifecycles failed beyond the retry: %v %q", ch.failures, ch.samples)
	}
	// Every sandbox the churn made was killed; none is left running, none stuck half-way.
	nc := bustest.ConnectURL(t, c.URL())
	b, err := bus.Open(ctx, nc, bus.Config{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Creates the client gave up on are ended by the apiserver in the background (with retries while
	// the cluster recovers), so the bucket settles within a bounded time.
	states := map[string]int{}
	bustest.Eventually(t, time.Minute, 500*time.Millisecond, func() error {
		recs, err := b.ListRecords(ctx)
		if err != nil {
			return err
		}
		states = map[string]int{}
		for _, r := range recs {
			states[string(r.State)]++
		}
		if n := states["running"] + states["pending"] + states["starting"]; n > 0 {
			return fmt.Errorf("%d records left running or half-created: %v", n, states)
		}
		return nil
	})
	t.Logf("records after the run: %v", states)
	if states["killed"] < ch.ok {
		t.Errorf("%d killed records for %d completed lifecycles: records lost", states["killed"], ch.ok)
	}
}
