package system

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The environment variables naming prebuilt binaries for BuildBinaries.
const (
	EnvAPIServerBin = "FLEETBOX_APISERVER_BIN"
	EnvWorkerBin    = "FLEETBOX_WORKER_BIN"
)

// Binaries are the paths of the two fleetbox binaries.
type Binaries struct{ APIServer, Worker string }

// BuildBinaries returns the apiserver and worker binaries for a test binary's tests: the prebuilt ones
// named by $FLEETBOX_APISERVER_BIN and $FLEETBOX_WORKER_BIN, or else those BuildOnce builds.
func BuildBinaries() (Binaries, error) {
	b := Binaries{APIServer: os.Getenv(EnvAPIServerBin), Worker: os.Getenv(EnvWorkerBin)}
	var pkgs []string
	var dst []*string
	if b.APIServer == "" {
		pkgs, dst = append(pkgs, "./apiserver/cmd/apiserver"), append(dst, &b.APIServer)
	}
	if b.Worker == "" {
		pkgs, dst = append(pkgs, "./worker/cmd/worker"), append(dst, &b.Worker)
	}
	bins, err := BuildOnce(pkgs...)
	if err != nil {
		return b, err
	}
	for i, bin := range bins {
		*dst[i] = bin
	}
	return b, nil
}

// What BuildOnce built in this test binary, by package.
var built struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
	errs map[string]error
}

// BuildOnce builds main packages of the workspace (paths relative to its root, as
// "./worker/cmd/worker") into a temporary directory with one `go build`, once per test binary: later
// calls, also from parallel tests, return the same binaries (or the same error). AfterTests removes them.
func BuildOnce(pkgs ...string) ([]string, error) {
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.bins == nil {
		built.bins, built.errs = map[string]string{}, map[string]error{}
	}
	var todo []string
	for _, pkg := range pkgs {
		if built.bins[pkg] == "" && built.errs[pkg] == nil {
			todo = append(todo, pkg)
		}
	}
	if len(todo) > 0 {
		err := build(todo)
		for _, pkg := range todo {
			if err != nil {
				built.errs[pkg] = err
			} else {
				built.bins[pkg] = filepath.Join(built.dir, path.Base(pkg))
			}
		}
	}
	out := make([]string, len(pkgs))
	for i, pkg := range pkgs {
		if err := built.errs[pkg]; err != nil {
			return nil, err
		}
		out[i] = built.bins[pkg]
	}
	return out, nil
}

// build runs go build for pkgs into built.dir; built.mu is held.
func build(pkgs []string) error {
	root, err := WorkspaceRoot()
	if err != nil {
		return err
	}
	if built.dir == "" {
		if built.dir, err = os.MkdirTemp("", "fleetbox-test-bin-"); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", built.dir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (in %s): %v\n%s", strings.Join(pkgs, " "), root, err, out)
	}
	return nil
}

// WorkspaceRoot is the directory holding go.work, found upwards from the working directory (go test runs
// a test binary in its package's directory).
func WorkspaceRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.work in %s or above", wd)
		}
	}
}

// AfterTests releases the test binary's watchdog and removes the binaries BuildOnce built. A TestMain calls
// it after m.Run, once it has stopped what it started itself.
func AfterTests() {
	releaseSharedWatchdog()
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
		built.dir, built.bins, built.errs = "", nil, nil
	}
}
