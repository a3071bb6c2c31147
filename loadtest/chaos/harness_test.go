// Package chaos holds the fault tests of the fleet: real apiserver and worker processes against real NATS
// servers (in this test process, so they can be stopped and restarted), killed and restarted while a
// client keeps using the system. Each test prints what it observed (times to detect, errors by kind).
package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"fleetbox.dev/loadtest/internal/client"
	"fleetbox.dev/schema/e2b"
)

var bins struct{ apiserver, worker string }

const apiKey = "e2b_0c4a05cafe0c4a05cafe"

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips
	}
	dir, err := os.MkdirTemp("", "fleetbox-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bins.apiserver, bins.worker = filepath.Join(dir, "apiserver"), filepath.Join(dir, "worker")
	for pkg, out := range map[string]string{"./apiserver/cmd/apiserver": bins.apiserver, "./worker/cmd/worker": bins.worker} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real servers")
	}
}

// proc is one apiserver or worker process; it can be killed and started again with the same arguments.
type proc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, bin: bin, args: args, log: filepath.Join(t.TempDir(), name+".log")}
	p.start()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- last lines of %s:\n%s", name, tail(p.log, 40))
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "E2B_API_KEY="+apiKey)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
}

// kill9 kills the process alone (not its children: a crashed worker leaves its sandboxes behind).
func (p *proc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks for a graceful stop (SIGTERM), then kills after a grace period.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// apiserver starts an apiserver against external NATS and waits until it is ready.
func apiserver(t *testing.T, name, natsURL string, extra ...string) (*proc, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := append([]string{"-addr", addr, "-nats", natsURL, "-worker-ttl", "3s", "-log-level", "debug"}, extra...)
	p := startProc(t, name, bins.apiserver, args...)
	url := "http://" + addr
	waitHealthy(t, url, 60*time.Second)
	return p, url
}

// worker starts a worker with its own data directory.
func worker(t *testing.T, name, natsURL string, capacity int) *proc {
	t.Helper()
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		python = "python3"
	}
	return startProc(t, name, bins.worker, "-nats", natsURL, "-id", name, "-data", filepath.Join(t.TempDir(), name),
		"-capacity", fmt.Sprint(capacity), "-python", python)
}

func health(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url + "/health")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitHealthy(t *testing.T, url string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if health(url) == http.StatusOK {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not healthy after %v", url, within)
	return 0
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
