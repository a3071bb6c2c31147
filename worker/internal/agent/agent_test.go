package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fleetbox.dev/worker/internal/runtime/runtimetest"
)

// startServer serves a real agent on a loopback port for the test's life.
func startServer(t *testing.T) (string, *Server) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String(), s
}

func shHeader(script string, env ...string) Header {
	return Header{Argv: []string{"sh", "-c", script}, Env: append([]string{"PATH=/usr/bin:/bin"}, env...), Dir: "/"}
}

// result is what one run produced.
type result struct {
	stdout, stderr string
	st             Status
	err            error
}

func run(t *testing.T, addr string, h Header, stdin io.Reader) result {
	t.Helper()
	var out, errb bytes.Buffer
	st, err := Run(t.Context(), addr, h, stdin, &out, &errb)
	return result{out.String(), errb.String(), st, err}
}

func TestRun(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "noexec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var lines, errLines strings.Builder
	for i := 1; i <= 2000; i++ {
		lines.WriteString("out" + strconv.Itoa(i) + "\n")
		errLines.WriteString("err" + strconv.Itoa(i) + "\n")
	}
	tests := []struct {
		name       string
		h          Header
		stdin      string
		noStdin    bool
		wantOut    string
		wantErr    string
		wantStatus Status
		wantExit   int
		startCode  int // a *StartError with this code
	}{
		{name: "exit 0", h: shHeader("true"), wantExit: 0},
		{name: "exit code", h: shHeader("exit 3"), wantStatus: Status{Code: 3}, wantExit: 3},
		{name: "killed by a signal", h: shHeader("kill -TERM $$"), wantStatus: Status{Code: -1, Signal: "TERM"}, wantExit: 128 + int(syscall.SIGTERM)},
		{name: "stdout and stderr apart, each in order", h: shHeader(`i=1; while [ $i -le 2000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done`),
			wantOut: lines.String(), wantErr: errLines.String()},
		{name: "env and dir", h: Header{Argv: []string{"sh", "-c", `pwd; echo "$FOO"; env | grep -c ^PATH=`}, Env: []string{"PATH=/usr/bin:/bin", "FOO=bar baz"}, Dir: dir},
			wantOut: dir + "\nbar baz\n1\n"},
		{name: "only the header's env", h: shHeader(`echo "${HOME-unset}"`), wantOut: "unset\n"},
		{name: "stdin relayed and closed", h: shHeader("cat; echo end"), stdin: "hello\nworld", wantOut: "hello\nworldend\n"},
		{name: "no stdin is an empty one", h: shHeader("cat; echo end"), noStdin: true, wantOut: "end\n"},
		{name: "relative program", h: Header{Argv: []string{"./noexec"}, Dir: dir}, startCode: 126},
		{name: "program not found", h: shHeader("x").withArgv("no-such-program-here"), startCode: 127},
		{name: "no PATH", h: Header{Argv: []string{"sh", "-c", "true"}}, startCode: 127},
		{name: "absolute program", h: Header{Argv: []string{"/bin/sh", "-c", "echo $0"}}, wantOut: "/bin/sh\n"},
		{name: "directory as program", h: Header{Argv: []string{dir}}, startCode: 126},
		{name: "missing directory", h: Header{Argv: []string{"/bin/true"}, Dir: "/nonexistent"}, startCode: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdin io.Reader = strings.NewReader(tt.stdin)
			if tt.noStdin {
				stdin = nil
			}
			r := run(t, addr, tt.h, stdin)
			if tt.startCode != 0 {
				var se *StartError
				if !errors.As(r.err, &se) || se.Code != tt.startCode {
					t.Fatalf("error %v, want a StartError with code %d", r.err, tt.startCode)
				}
				t.Logf("start error: %v", se)
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.stdout != tt.wantOut || r.stderr != tt.wantErr {
				t.Errorf("stdout %.200q, stderr %.200q; want %.200q, %.200q", r.stdout, r.stderr, tt.wantOut, tt.wantErr)
			}
			if r.st != tt.wantStatus || r.st.ExitCode() != tt.wantExit {
				t.Errorf("status %+v (exit code %d), want %+v (%d)", r.st, r.st.ExitCode(), tt.wantStatus, tt.wantExit)
			}
		})
	}
}

func (h Header) withArgv(argv ...string) Header {
	h.Argv = argv
	return h
}

// A signal reaches the whole process group: the shell's foreground child (which printed "ready", so it
// runs) dies of it too, so the trap runs at once instead of after the child's 30 s.
func TestSignalReachesTheGroup(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t)
	outR, outW := io.Pipe()
	p, err := Start(t.Context(), addr, shHeader(`trap 'echo trapped; exit 7' INT; sh -c 'echo ready; exec sleep 30'; echo not-reached`), nil, outW, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(outR)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("first line %q", sc.Text())
	}
	began := time.Now()
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	st, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	outW.Close()
	if st != (Status{Code: 7}) || time.Since(began) > 10*time.Second {
		t.Fatalf("status %v after %v, want exit 7 at once", st, time.Since(began))
	}
}

// A process that never reads its stdin while the client has endless stdin to send: the window bounds
// what the agent queues, and a signal is not held up behind the stdin data.
func TestSignalNotBehindUnreadStdin(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t)
	outR, outW := io.Pipe()
	p, err := Start(t.Context(), addr, shHeader(`echo ready; exec sleep 30`), zeros{}, outW, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(outR)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("first line %q", sc.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	time.Sleep(200 * time.Millisecond) // let the window fill
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Signal != "TERM" {
		t.Fatalf("status %v, want killed by TERM", st)
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// Stdin larger than the window arrives whole and in order.
func TestLargeStdin(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t)
	in := make([]byte, 8<<20)
	for i := range in {
		in[i] = byte(i * 7 / 3)
	}
	r := run(t, addr, shHeader("sha256sum | cut -d' ' -f1"), bytes.NewReader(in))
	if r.err != nil {
		t.Fatal(r.err, r.stderr)
	}
	sum := sha256.Sum256(in)
	if want := hexString(sum[:]) + "\n"; r.stdout != want {
		t.Fatalf("remote sha256 %q, want %q", r.stdout, want)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// gate is a writer that blocks until opened, counting what it took.
type gate struct {
	mu   sync.Mutex
	open chan struct{}
	n    int64
}

func (g *gate) Write(b []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	g.n += int64(len(b))
	g.mu.Unlock()
	return len(b), nil
}

// Output is flow controlled: while nobody takes the client's output, the remote writer blocks and
// neither side buffers it in memory.
func TestLargeOutputFlowControl(t *testing.T) {
	// Not parallel: it measures the heap.
	addr, _ := startServer(t)
	marker := filepath.Join(t.TempDir(), "done")
	const size = 64 << 20
	g := &gate{open: make(chan struct{})}
	var heapBefore goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&heapBefore)
	p, err := Start(t.Context(), addr, shHeader("head -c "+strconv.Itoa(size)+" /dev/zero; touch "+marker), nil, g, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the writer finished 64 MiB although nobody read its output")
	}
	var heap goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&heap)
	if grew := int64(heap.HeapAlloc) - int64(heapBefore.HeapAlloc); grew > 8<<20 {
		t.Errorf("heap grew by %d bytes with the output blocked", grew)
	}
	close(g.open)
	st, err := p.Wait()
	if err != nil || st.Code != 0 {
		t.Fatalf("status %v, %v", st, err)
	}
	if g.n != size {
		t.Fatalf("got %d bytes, want %d", g.n, size)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("marker: %v", err)
	}
}

// readPids starts script (which prints pids, one a line) and returns the process and the pids.
func readPids(t *testing.T, addr, script string, n int) (*Process, []int) {
	t.Helper()
	outR, outW := io.Pipe()
	p, err := Start(context.Background(), addr, shHeader(script), nil, outW, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(outR)
	var pids []int
	for len(pids) < n && sc.Scan() {
		pid, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	if len(pids) != n {
		t.Fatalf("pids %v", pids)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("process %d not running: %v", pid, err)
		}
	}
	return p, pids
}

// gone reports whether pid no longer runs: kill(pid, 0) fails, or it is a zombie waiting for init.
func gone(pid int) bool {
	return syscall.Kill(pid, 0) != nil || !runtimetest.ProcessAlive(pid)
}

// A lost connection kills the process and everything in its group; a finished one leaves its group's
// background children alone.
func TestConnectionLossKillsTheGroup(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t)
	p, pids := readPids(t, addr, `sleep 1000 & echo $!; echo $$; wait`, 2)
	p.Close()
	for _, pid := range pids {
		runtimetest.Eventually(t, func() bool { return gone(pid) }, "process %d survived the lost connection", pid)
	}
	if _, err := p.Wait(); !errors.Is(err, ErrConnectionLost) {
		t.Errorf("Wait after Close: %v", err)
	}

	// After the exit status, the connection's end kills nothing.
	bg, pids := readPids(t, addr, `sleep 1000 >/dev/null 2>&1 & echo $!`, 1)
	if st, err := bg.Wait(); err != nil || st.Code != 0 {
		t.Fatalf("status %v, %v", st, err)
	}
	time.Sleep(100 * time.Millisecond)
	if gone(pids[0]) {
		t.Fatal("a background child died with its finished parent's connection")
	}
	_ = syscall.Kill(pids[0], syscall.SIGKILL)
}

// Cancelling the context ends the connection and kills the process.
func TestContextCancelKills(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	outR, outW := io.Pipe()
	p, err := Start(ctx, addr, shHeader(`echo $$; exec sleep 1000`), nil, outW, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(outR)
	sc.Scan()
	pid, _ := strconv.Atoi(sc.Text())
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	cancel()
	if _, err := p.Wait(); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Wait: %v", err)
	}
	runtimetest.Eventually(t, func() bool { return gone(pid) }, "process %d survived the cancel", pid)
}

// Close ends every connection, killing processes that still run.
func TestServerCloseKills(t *testing.T) {
	t.Parallel()
	addr, s := startServer(t)
	p, pids := readPids(t, addr, `sleep 1000 & echo $!; echo $$; wait`, 2)
	s.Close()
	for _, pid := range pids {
		runtimetest.Eventually(t, func() bool { return gone(pid) }, "process %d survived Close", pid)
	}
	if _, err := p.Wait(); !errors.Is(err, ErrConnectionLost) {
		t.Errorf("Wait: %v", err)
	}
	if err := Probe(t.Context(), addr); err == nil {
		t.Error("a closed server answered")
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("switching credentials needs root")
	}
	addr, _ := startServer(t)
	nobody := 65534
	h := shHeader("id -u; id -g")
	h.UID, h.GID = &nobody, &nobody
	r := run(t, addr, h, nil)
	if r.err != nil || r.stdout != "65534\n65534\n" {
		t.Fatalf("id as 65534: %q, %q, %v", r.stdout, r.stderr, r.err)
	}
	// The working directory is entered as the new user.
	private := t.TempDir() // 0700, root's
	h.Dir = private
	if r := run(t, addr, h, nil); r.err == nil {
		t.Fatalf("uid 65534 entered a private directory: %q", r.stdout)
	} else {
		t.Logf("as expected: %v", r.err)
	}
}

// rawHeader connects, reads the hello and sends line as the header; it returns the server's first frame.
func rawHeader(t *testing.T, addr string, line []byte) (byte, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	hl, err := readLine(br, maxHello)
	if err != nil {
		t.Fatal(err)
	}
	var h hello
	if err := json.Unmarshal(hl, &h); err != nil || h.Version != Version || h.Agent != agentName {
		t.Fatalf("hello %q", hl)
	}
	go func() { _, _ = c.Write(line) }() // an oversized header is refused before it is all sent
	typ, payload, _, err := readFrame(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return typ, string(payload)
}

func TestBadHeaders(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t)
	huge := append([]byte(`{"version":1,"argv":["`+strings.Repeat("x", MaxHeader)), []byte(`"]}`+"\n")...)
	tests := []struct {
		name string
		line []byte
		want string
	}{
		{"oversized", huge, "line longer than"},
		{"wrong version", []byte(`{"version":2,"argv":["true"]}` + "\n"), "unsupported protocol version 2"},
		{"no version", []byte(`{"argv":["true"]}` + "\n"), "unsupported protocol version 0"},
		{"garbage", []byte("GET / HTTP/1.1\r\n"), "header is not JSON"},
		{"empty argv", []byte(`{"version":1,"argv":[]}` + "\n"), "empty argv"},
		{"relative dir", []byte(`{"version":1,"argv":["true"],"dir":"tmp"}` + "\n"), "not absolute"},
		{"uid without gid", []byte(`{"version":1,"argv":["true"],"uid":5}` + "\n"), "uid and gid go together"},
		{"uid out of range", []byte(`{"version":1,"argv":["true"],"uid":4294967296,"gid":0}` + "\n"), "out of range"},
		{"bad env", []byte(`{"version":1,"argv":["true"],"env":["NOEQUALS"]}` + "\n"), "not KEY=VALUE"},
		{"NUL", []byte(`{"version":1,"argv":["tr\u0000ue"]}` + "\n"), "NUL byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			typ, payload := rawHeader(t, addr, tt.line)
			var m errorMsg
			if typ != frameError || json.Unmarshal([]byte(payload), &m) != nil || !strings.Contains(m.Message, tt.want) {
				t.Fatalf("frame %q %.200q, want an error containing %q", typ, payload, tt.want)
			}
		})
	}
	// The server still serves.
	if r := run(t, addr, shHeader("echo ok"), nil); r.err != nil || r.stdout != "ok\n" {
		t.Fatalf("after bad headers: %q, %v", r.stdout, r.err)
	}
}

// A client that connects and says nothing is dropped after the handshake timeout.
func TestHandshakeTimeout(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{HandshakeTimeout: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { s.Close() })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	began := time.Now()
	b, err := io.ReadAll(c) // the hello, maybe an error frame, then the end
	if err != nil {
		t.Fatalf("read: %v (after %v)", err, time.Since(began))
	}
	if !bytes.HasPrefix(b, []byte(`{"agent":"sbx-agent","version":1}`)) || time.Since(began) > 5*time.Second {
		t.Fatalf("got %q after %v", b, time.Since(began))
	}
}

func TestProbe(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t)
	if err := Probe(t.Context(), addr); err != nil {
		t.Fatal(err)
	}
	// Something else on the port: a clear error, not a hang.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
			c.Close()
		}
	}()
	if err := Probe(t.Context(), l.Addr().String()); !errors.Is(err, ErrProtocol) {
		t.Fatalf("probe of a non-agent: %v", err)
	}
	// A newer agent.
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	go func() {
		c, err := l2.Accept()
		if err == nil {
			_, _ = c.Write([]byte(`{"agent":"sbx-agent","version":9}` + "\n"))
			c.Close()
		}
	}()
	if err := Probe(t.Context(), l2.Addr().String()); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("probe of a newer agent: %v", err)
	}
	// Nothing listening.
	addrClosed := l2.Addr().String()
	l2.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := Probe(ctx, addrClosed); err == nil {
		t.Fatal("probe of a closed port succeeded")
	}
}
