// Package system starts a whole fleetbox deployment on loopback for the bench and the smoke test: the
// apiserver (with its embedded NATS) and one worker, as real processes from prebuilt binaries, on free
// ports, in a temporary data directory. Stop ends both and then kills anything that still refers to that
// directory, so no process outlives a run. It also reads process memory from /proc.
package system

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Config says what to start.
type Config struct {
	APIServer string // path of the apiserver binary
	Worker    string // path of the worker binary
	Capacity  int    // worker -capacity
	Python    string // worker -python; "" = the worker's default
	Dir       string // data and logs; "" = a new temporary directory, removed by Stop unless Keep
	Keep      bool
}

// System is a running deployment.
type System struct {
	APIURL  string // http://127.0.0.1:PORT, API and sandbox URL
	NATSURL string // nats://127.0.0.1:PORT (the apiserver's embedded server)
	APIKey  string
	Dir     string

	cfg    Config
	ownDir bool
	api    *proc
	worker *proc
}

// Start launches the apiserver, waits for /health, launches the worker and waits until a sandbox can be
// created. On error everything started is stopped again.
func Start(ctx context.Context, cfg Config) (s *System, err error) {
	s = &System{cfg: cfg, Dir: cfg.Dir}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "fleetbox-bench-"); err != nil {
			return nil, err
		}
		s.ownDir = true
	}
	if r, err := filepath.EvalSymlinks(s.Dir); err == nil {
		s.Dir = r
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	s.APIKey = "e2b_" + hex.EncodeToString(key)
	// Ports come from binding :0 and closing; another process could take one in between, so retry.
	for attempt := 1; attempt <= 3; attempt++ {
		if err = s.startAPIServer(ctx, attempt); err == nil {
			break
		}
		if s.api != nil {
			s.api.stop(5 * time.Second)
			s.api = nil
		}
	}
	if err != nil {
		return s, err
	}
	return s, s.startWorker(ctx)
}

func (s *System) env() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(strings.ToUpper(k), "E2B_") {
			out = append(out, kv)
		}
	}
	return append(out, "E2B_API_KEY="+s.APIKey)
}

func (s *System) startAPIServer(ctx context.Context, attempt int) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	nport, err := FreePort()
	for err == nil && nport == port {
		nport, err = FreePort()
	}
	if err != nil {
		return err
	}
	s.APIURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.NATSURL = fmt.Sprintf("nats://127.0.0.1:%d", nport)
	s.api, err = startProc("apiserver", filepath.Join(s.Dir, fmt.Sprintf("apiserver-%d.log", attempt)), s.env(),
		s.cfg.APIServer,
		"-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"-nats-listen", fmt.Sprintf("127.0.0.1:%d", nport),
		"-data", filepath.Join(s.Dir, fmt.Sprintf("nats-%d", attempt)),
		"-log-level", "warn")
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if s.api.exited() {
			return fmt.Errorf("apiserver exited during start-up: %v\n%s", s.api.err, Tail(s.api.logPath, 30))
		}
		if resp, err := hc.Get(s.APIURL + "/health"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("apiserver not healthy within 30 s\n%s", Tail(s.api.logPath, 30))
}

func (s *System) startWorker(ctx context.Context) error {
	args := []string{"-nats", s.NATSURL, "-data", filepath.Join(s.Dir, "worker"), "-id", "bench-worker-1", "-log-level", "warn"}
	if s.cfg.Capacity > 0 {
		args = append(args, "-capacity", fmt.Sprint(s.cfg.Capacity))
	}
	if s.cfg.Python != "" {
		args = append(args, "-python", s.cfg.Python)
	}
	var err error
	if s.worker, err = startProc("worker", filepath.Join(s.Dir, "worker.log"), s.env(), s.cfg.Worker, args...); err != nil {
		return err
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if s.worker.exited() {
			return fmt.Errorf("worker exited during start-up: %v\n%s", s.worker.err, Tail(s.worker.logPath, 30))
		}
		id, err := s.probeCreate(hc)
		if err == nil {
			req, _ := http.NewRequest(http.MethodDelete, s.APIURL+"/sandboxes/"+id, nil)
			req.Header.Set("X-API-KEY", s.APIKey)
			if resp, err := hc.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			return nil
		}
		last = err.Error()
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no sandbox could be created within 60 s of starting the worker (last: %s)\n%s", last, Tail(s.worker.logPath, 30))
}

func (s *System) probeCreate(hc *http.Client) (string, error) {
	req, _ := http.NewRequest(http.MethodPost, s.APIURL+"/sandboxes", strings.NewReader(`{"templateID":"base","timeout":60}`))
	req.Header.Set("X-API-KEY", s.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("%s %s", resp.Status, bytes.TrimSpace(b))
	}
	var sb struct {
		SandboxID string `json:"sandboxID"`
	}
	if err := json.Unmarshal(b, &sb); err != nil || sb.SandboxID == "" {
		return "", fmt.Errorf("201 with body %q", b)
	}
	return sb.SandboxID, nil
}

// WorkerPID is the worker's process id.
func (s *System) WorkerPID() int { return s.worker.cmd.Process.Pid }

// APIServerPID is the apiserver's process id.
func (s *System) APIServerPID() int { return s.api.cmd.Process.Pid }

// Stop sends SIGTERM to the worker (which drains its sandboxes) and then to the apiserver, SIGKILLs either
// after 60 s, then kills any process still referring to the data directory and reports it as a leak.
func (s *System) Stop() error {
	var errs []error
	if s.worker != nil {
		if s.worker.exited() {
			errs = append(errs, fmt.Errorf("worker exited before the end: %v", s.worker.err))
		} else if !s.worker.stop(60 * time.Second) {
			errs = append(errs, errors.New("worker did not exit within 60 s of SIGTERM (killed)"))
		}
	}
	if s.api != nil {
		if s.api.exited() {
			errs = append(errs, fmt.Errorf("apiserver exited before the end: %v", s.api.err))
		} else if !s.api.stop(30 * time.Second) {
			errs = append(errs, errors.New("apiserver did not exit within 30 s of SIGTERM (killed)"))
		}
	}
	if s.Dir != "" {
		if leaked := sweep(s.Dir, 5*time.Second); len(leaked) > 0 {
			errs = append(errs, fmt.Errorf("%d process(es) outlived the system and were killed:\n  %s", len(leaked), strings.Join(leaked, "\n  ")))
		}
	}
	if s.ownDir && !s.cfg.Keep && len(errs) == 0 {
		_ = os.RemoveAll(s.Dir)
	}
	return errors.Join(errs...)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Tail returns the last n lines of a file.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type proc struct {
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = f, f, env
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{logPath: logPath, cmd: cmd, done: make(chan struct{})}
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

// stop SIGTERMs the process group, waits up to timeout, then SIGKILLs it; it reports a graceful exit.
func (p *proc) stop(timeout time.Duration) bool {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // stragglers of its group
		return true
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
		return false
	}
}
