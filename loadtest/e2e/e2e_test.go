package e2e

// The harness: TestMain, building and starting the two fleetbox binaries,
// the process watchdog, and the SDK suite runners (TestJSSDK, TestPythonSDK).
//
// Knobs (environment):
//
//	FLEETBOX_E2E_APISERVER_BIN, FLEETBOX_E2E_WORKER_BIN
//	    use these prebuilt binaries instead of running `go build`.
//	FLEETBOX_E2E_KEEP_TMP=1
//	    keep the temporary directory (binaries, data dirs, logs) even on success.
//	FLEETBOX_E2E_WORKER_CAPACITY
//	    the worker's -capacity (default 24).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	envAPIServerBin   = "FLEETBOX_E2E_APISERVER_BIN"
	envWorkerBin      = "FLEETBOX_E2E_WORKER_BIN"
	envKeepTmp        = "FLEETBOX_E2E_KEEP_TMP"
	envWorkerCapacity = "FLEETBOX_E2E_WORKER_CAPACITY"

	// Pinned SDK versions; TestJSSDK/TestPythonSDK refuse to run anything else.
	pinnedJSE2B            = "2.51.0"
	pinnedJSCodeInterp     = "2.8.0"
	depsHint               = "run loadtest/e2e/deps.sh (from the repository root: `bash loadtest/e2e/deps.sh`) first"
	healthTimeout          = 60 * time.Second
	workerReadyTimeout     = 60 * time.Second
	gracefulStopTimeout    = 15 * time.Second
	leakGraceTimeout       = 5 * time.Second
	defaultWorkerCapacity  = "24"
	sandboxIDPattern       = `^[a-z0-9]{20}$`
	nonexistentSandboxID   = "zzzzzzzzzzzzzzzzzzzz" // well-formed, never issued (ids are random)
	codeInterpreterPort    = "49999"
	envdPort               = "49983"
	templateBase           = "base"
	templateCodeInterpeter = "code-interpreter-v1"
)

var sandboxIDRe = regexp.MustCompile(sandboxIDPattern)

// harness is the running system under test. One per test binary, started
// lazily by the first test that needs it and stopped by TestMain.
type harness struct {
	root    string // workspace root (has go.work)
	tmp     string // everything we create lives below here
	apiURL  string // http://127.0.0.1:PORT
	natsURL string
	apiKey  string

	api    *proc
	worker *proc
	wd     *watchdog

	stopOnce sync.Once
	stopErr  error
}

var (
	hOnce sync.Once
	hMu   sync.Mutex
	h     *harness
	hErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	hMu.Lock()
	cur := h
	hMu.Unlock()
	if cur != nil {
		if err := cur.stop(code != 0); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// requireServer returns the running harness, starting it on first use.
// Under -short it skips: the end-to-end tests need the real binaries.
func requireServer(t *testing.T) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping end-to-end test that needs the fleetbox apiserver and worker")
	}
	hOnce.Do(func() {
		cur, err := startHarness()
		hMu.Lock()
		h, hErr = cur, err
		hMu.Unlock()
	})
	if hErr != nil {
		t.Fatalf("starting fleetbox: %v", hErr)
	}
	return h
}

// stopOnPanic is deferred by the top-level tests: a panic kills the test
// binary without running TestMain's cleanup, so stop the servers first.
// (The watchdog process is the backstop for everything else, e.g. go test's
// own timeout panic.)
func stopOnPanic() {
	if r := recover(); r != nil {
		fmt.Fprintf(os.Stderr, "e2e: panic: %v\n%s\n", r, debug.Stack())
		hMu.Lock()
		cur := h
		hMu.Unlock()
		if cur != nil {
			_ = cur.stop(true)
		}
		panic(r)
	}
}

func e2eDir() string {
	wd, err := os.Getwd() // go test runs in the package directory
	if err != nil {
		panic(err)
	}
	return wd
}

func findRoot() (string, error) {
	dir := e2eDir()
	for i := 0; i < 4; i++ {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		dir = filepath.Dir(dir)
	}
	return "", fmt.Errorf("cannot find the workspace root (go.work) above %s", e2eDir())
}

func startHarness() (*harness, error) {
	root, err := findRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "fleetbox-e2e-")
	if err != nil {
		return nil, err
	}
	// Resolve symlinks so the leak sweep compares like with like.
	if r, err := filepath.EvalSymlinks(tmp); err == nil {
		tmp = r
	}
	hh := &harness{root: root, tmp: tmp}
	fmt.Fprintf(os.Stderr, "e2e: working directory %s\n", tmp)

	hh.wd, err = startWatchdog(tmp)
	if err != nil {
		return hh, fmt.Errorf("starting the process watchdog: %w", err)
	}

	apiBin, workerBin, err := hh.binaries()
	if err != nil {
		return hh, err
	}

	key := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		return hh, err
	}
	hh.apiKey = "e2b_" + hex.EncodeToString(key)

	// Ports are picked by binding :0 and closing, so another process could
	// grab one in between: retry a couple of times on an early exit.
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		lastErr = hh.startAPIServer(apiBin, attempt)
		if lastErr == nil {
			break
		}
		if hh.api != nil {
			hh.api.kill(5 * time.Second)
			hh.api = nil
		}
	}
	if lastErr != nil {
		return hh, lastErr
	}
	if err := hh.startWorker(workerBin); err != nil {
		return hh, err
	}
	return hh, nil
}

// binaries builds apiserver and worker (or takes prebuilt ones from the env).
func (hh *harness) binaries() (string, string, error) {
	apiBin, workerBin := os.Getenv(envAPIServerBin), os.Getenv(envWorkerBin)
	binDir := filepath.Join(hh.tmp, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", "", err
	}
	build := func(out, pkg string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = hh.root
		outb, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build %s (in %s): %v\n%s", pkg, hh.root, err, outb)
		}
		return nil
	}
	if apiBin == "" {
		apiBin = filepath.Join(binDir, "apiserver")
		if err := build(apiBin, "./apiserver/cmd/apiserver"); err != nil {
			return "", "", err
		}
	}
	if workerBin == "" {
		workerBin = filepath.Join(binDir, "worker")
		if err := build(workerBin, "./worker/cmd/worker"); err != nil {
			return "", "", err
		}
	}
	return apiBin, workerBin, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (hh *harness) serverEnv() []string {
	env := filteredEnv()
	return append(env, "E2B_API_KEY="+hh.apiKey)
}

func (hh *harness) startAPIServer(bin string, attempt int) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	nport, err := freePort()
	for err == nil && nport == port {
		nport, err = freePort()
	}
	if err != nil {
		return err
	}
	dataDir := filepath.Join(hh.tmp, fmt.Sprintf("apiserver-data-%d", attempt))
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	hh.apiURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	hh.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", nport)
	hh.api, err = startProc(hh.wd, "apiserver", filepath.Join(hh.tmp, fmt.Sprintf("apiserver-%d.log", attempt)),
		hh.serverEnv(), bin,
		"-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"-nats-listen", fmt.Sprintf("127.0.0.1:%d", nport),
		"-data", dataDir)
	if err != nil {
		return err
	}
	return hh.waitHealthy()
}

// waitHealthy polls GET /health until 200 (503 means "not ready yet").
func (hh *harness) waitHealthy() error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(healthTimeout)
	var last string
	for time.Now().Before(deadline) {
		if hh.api.exited() {
			return fmt.Errorf("apiserver exited before becoming healthy (%v)\n%s", hh.api.exitErr(), tailFile(hh.api.logPath, 60))
		}
		resp, err := client.Get(hh.apiURL + "/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("apiserver not healthy after %v (last: %s)\n%s", healthTimeout, last, tailFile(hh.api.logPath, 60))
}

func (hh *harness) startWorker(bin string) error {
	capacity := os.Getenv(envWorkerCapacity)
	if capacity == "" {
		capacity = defaultWorkerCapacity
	}
	dataDir := filepath.Join(hh.tmp, "worker-data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	var err error
	hh.worker, err = startProc(hh.wd, "worker", filepath.Join(hh.tmp, "worker.log"), filteredEnv(), bin,
		"-nats", hh.natsURL,
		"-data", dataDir,
		"-capacity", capacity,
		"-python", "/usr/bin/python3",
		"-id", "e2e-worker-1")
	if err != nil {
		return err
	}
	return hh.waitWorkerReady()
}

// waitWorkerReady retries a real create until the worker has registered,
// then kills the probe sandbox.
func (hh *harness) waitWorkerReady() error {
	client := &http.Client{Timeout: 15 * time.Second}
	deadline := time.Now().Add(workerReadyTimeout)
	backoff := 100 * time.Millisecond
	var last string
	for time.Now().Before(deadline) {
		if hh.worker.exited() {
			return fmt.Errorf("worker exited during startup (%v)\n%s", hh.worker.exitErr(), tailFile(hh.worker.logPath, 60))
		}
		if hh.api.exited() {
			return fmt.Errorf("apiserver exited during worker startup (%v)\n%s", hh.api.exitErr(), tailFile(hh.api.logPath, 60))
		}
		req, _ := http.NewRequest("POST", hh.apiURL+"/v2/sandboxes", strings.NewReader(`{"templateID":"base","timeout":60,"metadata":{"e2e":"readiness-probe"}}`))
		req.Header.Set("X-API-KEY", hh.apiKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				var sb struct {
					SandboxID string `json:"sandboxID"`
				}
				if err := json.Unmarshal(body, &sb); err != nil || sb.SandboxID == "" {
					return fmt.Errorf("readiness create: 201 with unusable body %q", body)
				}
				dreq, _ := http.NewRequest("DELETE", hh.apiURL+"/sandboxes/"+sb.SandboxID, nil)
				dreq.Header.Set("X-API-KEY", hh.apiKey)
				if dresp, err := client.Do(dreq); err == nil {
					_, _ = io.Copy(io.Discard, dresp.Body)
					dresp.Body.Close()
				}
				return nil
			}
			if resp.StatusCode == http.StatusUnauthorized {
				return fmt.Errorf("readiness create rejected our API key: %s %s", resp.Status, body)
			}
			last = fmt.Sprintf("%s %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		time.Sleep(backoff)
		if backoff < time.Second {
			backoff *= 2
		}
	}
	return fmt.Errorf("no sandbox could be created within %v of starting the worker (last: %s)\nworker log:\n%s\napiserver log:\n%s",
		workerReadyTimeout, last, tailFile(hh.worker.logPath, 60), tailFile(hh.api.logPath, 60))
}

// stop shuts everything down (worker first), checks that no process is left
// behind, prints the logs when something failed and removes the temp dir.
func (hh *harness) stop(failed bool) error {
	hh.stopOnce.Do(func() {
		var errs []error
		if hh.worker != nil {
			if hh.worker.exited() {
				errs = append(errs, fmt.Errorf("worker exited before the end of the tests: %v", hh.worker.exitErr()))
			} else if !hh.worker.terminate(gracefulStopTimeout) {
				errs = append(errs, fmt.Errorf("worker did not exit within %v of SIGTERM (killed)", gracefulStopTimeout))
			}
		}
		if hh.api != nil {
			if hh.api.exited() {
				errs = append(errs, fmt.Errorf("apiserver exited before the end of the tests: %v", hh.api.exitErr()))
			} else if !hh.api.terminate(gracefulStopTimeout) {
				errs = append(errs, fmt.Errorf("apiserver did not exit within %v of SIGTERM (killed)", gracefulStopTimeout))
			}
		}
		if leaked := sweepLeaks(hh.tmp, leakGraceTimeout); len(leaked) > 0 {
			errs = append(errs, fmt.Errorf("%d process(es) outlived the worker and apiserver and were killed:\n  %s",
				len(leaked), strings.Join(leaked, "\n  ")))
		}
		if hh.wd != nil {
			hh.wd.release()
		}
		hh.stopErr = errors.Join(errs...)
		if failed || hh.stopErr != nil {
			for _, p := range []*proc{hh.api, hh.worker} {
				if p != nil {
					fmt.Fprintf(os.Stderr, "e2e: ---- last lines of %s (%s) ----\n%s\n", p.name, p.logPath, tailFile(p.logPath, 200))
				}
			}
			fmt.Fprintf(os.Stderr, "e2e: logs and data kept in %s\n", hh.tmp)
			return
		}
		if os.Getenv(envKeepTmp) != "" {
			fmt.Fprintf(os.Stderr, "e2e: %s set, kept %s\n", envKeepTmp, hh.tmp)
			return
		}
		_ = os.RemoveAll(hh.tmp)
	})
	return hh.stopErr
}

// clientEnv is the environment for the SDK suites.
func (hh *harness) clientEnv() []string {
	env := filteredEnv()
	return append(env,
		"E2B_API_URL="+hh.apiURL,
		"E2B_SANDBOX_URL="+hh.apiURL,
		"E2B_API_KEY="+hh.apiKey,
		"NO_PROXY=127.0.0.1,localhost",
		"no_proxy=127.0.0.1,localhost",
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
	)
}

// filteredEnv is os.Environ without anything that could redirect the SDKs or
// the servers (E2B_*, proxies).
func filteredEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		uk := strings.ToUpper(k)
		if strings.HasPrefix(uk, "E2B_") || uk == "HTTP_PROXY" || uk == "HTTPS_PROXY" || uk == "ALL_PROXY" || uk == "NO_PROXY" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// ---- processes ----

type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

func startProc(wd *watchdog, name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = env
	cmd.SysProcAttr = serverSysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	if wd != nil {
		wd.register(cmd.Process.Pid)
	}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) exitErr() error {
	<-p.done
	if p.err == nil {
		return errors.New("exit status 0")
	}
	return p.err
}

// terminate sends SIGTERM to the process group and waits; after the timeout
// it SIGKILLs the group. Reports whether the exit was graceful.
func (p *proc) terminate(timeout time.Duration) bool {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // stragglers in its group
		return true
	case <-time.After(timeout):
		p.kill(5 * time.Second)
		return false
	}
}

func (p *proc) kill(wait time.Duration) {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(wait):
	}
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines in %s)", len(lines)-n, path)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// ---- watchdog ----

// watchdog is a tiny shell process that outlives us: we write the process
// group ids of the servers into its stdin. If the test binary dies without
// saying "done" (panic, go test timeout, SIGKILL), the pipe closes and the
// watchdog terminates the groups and kills anything still referencing the
// temp directory (e.g. sandbox processes of a worker that was killed).
type watchdog struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	mu  sync.Mutex
}

const watchdogScript = `
dir=$FLEETBOX_E2E_DIR
groups=""
while IFS= read -r line; do
  case "$line" in
    done) exit 0 ;;
    *) groups="$groups $line" ;;
  esac
done
for g in $groups; do kill -TERM -- "-$g" 2>/dev/null; done
sleep 3
for g in $groups; do kill -KILL -- "-$g" 2>/dev/null; done
for d in /proc/[0-9]*; do
  pid=${d#/proc/}
  [ "$pid" = "$$" ] && continue
  cwd=$(readlink "$d/cwd" 2>/dev/null) || continue
  case "$cwd" in
    "$dir"|"$dir"/*) kill -KILL "$pid" 2>/dev/null; continue ;;
  esac
  if tr '\000' ' ' < "$d/cmdline" 2>/dev/null | grep -qF -- "$dir"; then
    kill -KILL "$pid" 2>/dev/null
  fi
done
echo "e2e watchdog: test process went away; cleaned up processes of $dir" >&2
`

func startWatchdog(dir string) (*watchdog, error) {
	cmd := exec.Command("/bin/bash", "-c", watchdogScript)
	cmd.Dir = "/"
	cmd.Env = append(filteredEnv(), "FLEETBOX_E2E_DIR="+dir)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // not hit by a ^C to our group
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &watchdog{cmd: cmd, in: in}, nil
}

func (w *watchdog) register(pgid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(w.in, "%d\n", pgid)
}

func (w *watchdog) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = io.WriteString(w.in, "done\n")
	_ = w.in.Close()
	done := make(chan struct{})
	go func() { _ = w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = w.cmd.Process.Kill()
	}
}

// ---- SDK suites ----

func TestJSSDK(t *testing.T) {
	defer stopOnPanic()
	if testing.Short() {
		t.Skip("-short: skipping the JS SDK suite (needs the fleetbox servers)")
	}
	dir := filepath.Join(e2eDir(), "js")
	for pkg, want := range map[string]string{
		"e2b":                   pinnedJSE2B,
		"@e2b/code-interpreter": pinnedJSCodeInterp,
		"ws":                    "",
	} {
		b, err := os.ReadFile(filepath.Join(dir, "node_modules", pkg, "package.json"))
		if err != nil {
			t.Fatalf("JS dependencies are missing (%s not installed in %s): %s", pkg, dir, depsHint)
		}
		var meta struct{ Version string }
		if err := json.Unmarshal(b, &meta); err != nil || (want != "" && meta.Version != want) {
			t.Fatalf("JS dependency %s is version %q, want %q: %s", pkg, meta.Version, want, depsHint)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH (Node 20+ is required): %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.test.mjs"))
	if len(files) == 0 {
		t.Fatalf("no *.test.mjs files in %s", dir)
	}
	hh := requireServer(t)
	// --test-force-exit: a socket left open by a test must not hang the run.
	args := []string{"--test", "--test-concurrency=1", "--test-force-exit", "--test-reporter=spec"}
	for _, f := range files {
		args = append(args, filepath.Base(f))
	}
	runSuite(t, "js", dir, node, args, hh.clientEnv())
}

func TestPythonSDK(t *testing.T) {
	defer stopOnPanic()
	if testing.Short() {
		t.Skip("-short: skipping the Python SDK suite (needs the fleetbox servers)")
	}
	dir := filepath.Join(e2eDir(), "py")
	py := filepath.Join(dir, ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("Python venv is missing (%s): %s", py, depsHint)
	}
	want, err := pinnedPythonVersions(filepath.Join(dir, "requirements.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c",
		`import importlib.metadata as m, sys
for n in sys.argv[1:]:
    print(n, m.version(n))`, "e2b", "e2b-code-interpreter", "pytest").CombinedOutput()
	if err != nil {
		t.Fatalf("Python dependencies are missing in %s (%v: %s): %s", py, err, bytes.TrimSpace(out), depsHint)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, ver, _ := strings.Cut(line, " ")
		if w, ok := want[name]; ok && w != ver {
			t.Fatalf("Python dependency %s is version %s, requirements.txt pins %s: %s", name, ver, w, depsHint)
		}
	}
	hh := requireServer(t)
	runSuite(t, "py", dir, py, []string{"-m", "pytest", "-q", "-rfE"}, hh.clientEnv())
}

func pinnedPythonVersions(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if name, ver, ok := strings.Cut(line, "=="); ok {
			out[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(ver)
		}
	}
	for _, n := range []string{"e2b", "e2b-code-interpreter", "pytest"} {
		if out[n] == "" {
			return nil, fmt.Errorf("%s does not pin %s with ==", path, n)
		}
	}
	return out, nil
}

// runSuite runs an SDK test suite as a child process group, streaming its
// output into the test log line by line, and kills the group when done.
func runSuite(t *testing.T, tag, dir, bin string, args []string, env []string) {
	t.Helper()
	timeout := 20 * time.Minute
	if dl, ok := t.Deadline(); ok {
		timeout = time.Until(dl) - 45*time.Second // leave time for cleanup and logs
	}
	if timeout < time.Minute {
		t.Fatalf("not enough time left for the %s suite (%v); run go test with a larger -timeout, e.g. -timeout 30m", tag, timeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	lw := &lineLogger{t: t, prefix: tag + "| "}
	cmd.Stdout = lw
	cmd.Stderr = lw
	t.Logf("running %s %s (in %s)", filepath.Base(bin), strings.Join(args, " "), dir)
	err := cmd.Run()
	lw.flush()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // stragglers
	}
	if ctx.Err() != nil {
		t.Fatalf("the %s suite did not finish within %v and was killed", tag, timeout)
	}
	if err != nil {
		t.Fatalf("the %s suite failed (%v); its output is above", tag, err)
	}
}

// lineLogger forwards complete lines to t.Log (which streams under -v).
type lineLogger struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.t.Log(l.prefix + strings.TrimRight(string(l.buf[:i]), "\r"))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.t.Log(l.prefix + string(l.buf))
		l.buf = nil
	}
}

// ---- leak sweep ----

// sweepLeaks waits up to grace for processes that reference dir (cwd below
// it or dir in their command line) to go away, then SIGKILLs the rest and
// describes them.
func sweepLeaks(dir string, grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	for {
		pids := procsReferencing(dir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var out []string
			for _, pid := range pids {
				out = append(out, fmt.Sprintf("pid %d: %s", pid, procDescription(pid)))
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}
