package e2e

// The harness: TestMain, the fleetbox deployment the tests share (started by
// internal/system on first use) and the SDK suite runners (TestJSSDK,
// TestPythonSDK).
//
// Knobs (environment):
//
//	FLEETBOX_APISERVER_BIN, FLEETBOX_WORKER_BIN
//	    use these prebuilt binaries instead of running `go build`.
//	FLEETBOX_E2E_KEEP_TMP=1
//	    keep the temporary directory (data dirs, logs) even on success.
//	FLEETBOX_E2E_WORKER_CAPACITY
//	    the worker's -capacity (default 24).

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fleetbox.dev/loadtest/internal/system"
)

const (
	envKeepTmp        = "FLEETBOX_E2E_KEEP_TMP"
	envWorkerCapacity = "FLEETBOX_E2E_WORKER_CAPACITY"

	// Pinned SDK versions; TestJSSDK/TestPythonSDK refuse to run anything else.
	pinnedJSE2B            = "2.51.0"
	pinnedJSCodeInterp     = "2.8.0"
	depsHint               = "run loadtest/e2e/deps.sh (from the repository root: `bash loadtest/e2e/deps.sh`) first"
	gracefulStopTimeout    = 15 * time.Second
	defaultWorkerCapacity  = 24
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
	sys    *system.System
	apiURL string // http://127.0.0.1:PORT
	apiKey string
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
		if err := cur.sys.Stop(code != 0); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\n", err)
			code = 1
		}
	}
	system.AfterTests()
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
			_ = cur.sys.Stop(true)
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

// startHarness starts the apiserver (embedded NATS) and one worker, with
// the process watchdog, and waits until a sandbox can be created.
func startHarness() (*harness, error) {
	bins, err := system.BuildBinaries()
	if err != nil {
		return nil, err
	}
	capacity := defaultWorkerCapacity
	if v := os.Getenv(envWorkerCapacity); v != "" {
		if capacity, err = strconv.Atoi(v); err != nil || capacity <= 0 {
			return nil, fmt.Errorf("%s=%q: want a positive number", envWorkerCapacity, v)
		}
	}
	sys, err := system.Start(context.Background(), system.Config{
		APIServer:   bins.APIServer,
		Worker:      bins.Worker,
		Capacity:    capacity,
		Python:      "/usr/bin/python3",
		Name:        "e2e",
		Keep:        os.Getenv(envKeepTmp) != "",
		StopTimeout: gracefulStopTimeout,
		Watchdog:    true,
		Log:         os.Stderr,
	})
	if err != nil {
		return nil, err
	}
	return &harness{sys: sys, apiURL: sys.APIURL, apiKey: sys.APIKey}, nil
}

// clientEnv is the environment for the SDK suites.
func (hh *harness) clientEnv() []string {
	env := system.CleanEnv()
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
