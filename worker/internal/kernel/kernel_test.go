package kernel

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pythonPath is /usr/bin/python3, or python3 from PATH, or $FLEETBOX_TEST_PYTHON
// (to run the tests against other Python versions).
func pythonPath(tb testing.TB) string {
	if p := os.Getenv("FLEETBOX_TEST_PYTHON"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		tb.Skip("no python3")
	}
	return p
}

// testLog forwards logs to t.Log until the test ends.
type testLog struct {
	mu  sync.Mutex
	tb  testing.TB
	off bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.off {
		w.tb.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func startKernel(tb testing.TB, edit func(*Config)) *Kernel {
	tb.Helper()
	w := &testLog{tb: tb}
	tb.Cleanup(func() { w.mu.Lock(); w.off = true; w.mu.Unlock() })
	cfg := Config{
		Python: pythonPath(tb),
		Dir:    tb.TempDir(),
		Env:    []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + tb.TempDir(), "LANG=C.UTF-8"},
		Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k, err := Start(ctx, cfg)
	if err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() { k.Close() })
	return k
}

type event struct {
	Type           string          `json:"type"`
	ExecutionCount int             `json:"execution_count"`
	Text           *string         `json:"text"`
	Timestamp      string          `json:"timestamp"`
	IsMainResult   bool            `json:"is_main_result"`
	HTML           string          `json:"html"`
	PNG            string          `json:"png"`
	Markdown       string          `json:"markdown"`
	JSON           json.RawMessage `json:"json"`
	Extra          json.RawMessage `json:"extra"`
	Name           *string         `json:"name"`
	Value          *string         `json:"value"`
	Traceback      *string         `json:"traceback"`

	at time.Time
}

func (e event) text() string {
	if e.Text == nil {
		return ""
	}
	return *e.Text
}

// collect returns an emit func that records decoded events.
func collect(tb testing.TB, evs *[]event) func([]byte) error {
	return func(line []byte) error {
		if len(line) == 0 || line[len(line)-1] == '\n' {
			tb.Errorf("bad line framing: %q", truncate(line))
		}
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			tb.Errorf("bad JSON line %q: %v", truncate(line), err)
		}
		e.at = time.Now()
		*evs = append(*evs, e)
		return nil
	}
}

func execute(tb testing.TB, k *Kernel, code string, env map[string]string) []event {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var evs []event
	if err := k.Execute(ctx, code, env, collect(tb, &evs)); err != nil {
		tb.Fatalf("Execute(%q): %v", code, err)
	}
	checkFraming(tb, evs)
	return evs
}

// checkFraming checks number_of_executions first, end_of_execution last.
func checkFraming(tb testing.TB, evs []event) {
	tb.Helper()
	if len(evs) < 2 || evs[0].Type != "number_of_executions" || evs[len(evs)-1].Type != "end_of_execution" {
		tb.Fatalf("bad framing: %+v", evs)
	}
	for _, e := range evs[1 : len(evs)-1] {
		if e.Type == "number_of_executions" || e.Type == "end_of_execution" {
			tb.Fatalf("framing line in the middle: %+v", evs)
		}
	}
}

func ofType(evs []event, typ string) []event {
	var out []event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func mainResult(tb testing.TB, evs []event) *event {
	tb.Helper()
	var main *event
	for i, e := range evs {
		if e.Type == "result" && e.IsMainResult {
			if main != nil {
				tb.Fatalf("two main results: %+v", evs)
			}
			main = &evs[i]
		}
	}
	return main
}

func streamText(evs []event, typ string) string {
	var b strings.Builder
	for _, e := range ofType(evs, typ) {
		b.WriteString(e.text())
	}
	return b.String()
}

func oneError(tb testing.TB, evs []event) event {
	tb.Helper()
	errs := ofType(evs, "error")
	if len(errs) != 1 {
		tb.Fatalf("want 1 error event, got %+v", evs)
	}
	e := errs[0]
	if e.Name == nil || e.Value == nil || e.Traceback == nil {
		tb.Fatalf("error event lacks name/value/traceback: %+v", e)
	}
	return e
}

func TestResults(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	tests := []struct {
		code     string
		want     string // main result text; "" = no main result
		wantJSON string
		wantHTML string
	}{
		{code: "1+1", want: "2"},
		{code: "'hello'", want: "hello"},
		{code: `"it's"`, want: "it's"},
		{code: `'a\nb'`, want: `a\nb`},
		{code: "None"},
		{code: "1+1;"},
		{code: "1+1;  # comment"},
		{code: "x = 5"},
		{code: "3.5", want: "3.5"},
		{code: "{'a': 1, 'b': [1, 2]}", want: "{'a': 1, 'b': [1, 2]}", wantJSON: `{"a":1,"b":[1,2]}`},
		{code: "[1, 'x']", want: "[1, 'x']", wantJSON: `[1,"x"]`},
		{code: "class H:\n    def _repr_html_(self):\n        return '<b>hi</b>'\n    def __repr__(self):\n        return 'H()'\nH()", want: "H()", wantHTML: "<b>hi</b>"},
		{code: "class M:\n    def _repr_mimebundle_(self, include=None, exclude=None):\n        return {'text/plain': 'M!', 'text/html': '<i>m</i>'}\nM()", want: "M!", wantHTML: "<i>m</i>"},
		{code: "import asyncio\nawait asyncio.sleep(0.01)\n'awaited'", want: "awaited"},
		{code: "async def f():\n    return 7\nawait f()", want: "7"},
	}
	for _, tc := range tests {
		evs := execute(t, k, tc.code, nil)
		if errs := ofType(evs, "error"); len(errs) > 0 {
			t.Errorf("%q: unexpected error %s", tc.code, *errs[0].Traceback)
			continue
		}
		r := mainResult(t, evs)
		if tc.want == "" {
			if r != nil {
				t.Errorf("%q: want no result, got %+v", tc.code, *r)
			}
			continue
		}
		if r == nil {
			t.Errorf("%q: no main result in %+v", tc.code, evs)
			continue
		}
		if r.text() != tc.want {
			t.Errorf("%q: text = %q, want %q", tc.code, r.text(), tc.want)
		}
		if string(r.JSON) != tc.wantJSON {
			t.Errorf("%q: json = %s, want %s", tc.code, r.JSON, tc.wantJSON)
		}
		if r.HTML != tc.wantHTML {
			t.Errorf("%q: html = %q, want %q", tc.code, r.HTML, tc.wantHTML)
		}
		if string(r.Extra) != "{}" {
			t.Errorf("%q: extra = %s, want {}", tc.code, r.Extra)
		}
	}
}

func TestStateAndExecutionCount(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	e1 := execute(t, k, "x = 41", nil)
	e2 := execute(t, k, "x + 1", nil)
	if e1[0].ExecutionCount != 1 || e2[0].ExecutionCount != 2 {
		t.Errorf("execution counts %d, %d; want 1, 2", e1[0].ExecutionCount, e2[0].ExecutionCount)
	}
	if r := mainResult(t, e2); r == nil || r.text() != "42" {
		t.Fatalf("x + 1: %+v", e2)
	}
	// _ is the last result, and classes defined in cells pickle like in Jupyter.
	e3 := execute(t, k, "import pickle\nclass P: pass\n_ + len(pickle.dumps(P())) * 0", nil)
	if r := mainResult(t, e3); r == nil || r.text() != "42" {
		t.Fatalf("_: %+v", e3)
	}
}

func TestDisplayAndUnknownMIME(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	evs := execute(t, k, `
class X:
    def _repr_mimebundle_(self, include=None, exclude=None):
        return {'text/plain': 'X', 'application/vnd.custom+json': {'k': 1}}
print('before')
display({'a': 1})
display(X())
print('after')
'main'`, nil)
	var seq []string
	for _, e := range evs[1 : len(evs)-1] {
		seq = append(seq, fmt.Sprintf("%s:%s:%v", e.Type, strings.TrimSpace(e.text()), e.IsMainResult))
	}
	want := "stdout:before:false result:{'a': 1}:false result:X:false stdout:after:false result:main:true"
	if got := strings.Join(seq, " "); got != want {
		t.Fatalf("sequence\n got %s\nwant %s", got, want)
	}
	if d := evs[2]; string(d.JSON) != `{"a":1}` {
		t.Errorf("display json = %s", d.JSON)
	}
	if x := evs[3]; string(x.Extra) != `{"application/vnd.custom+json":{"k":1}}` {
		t.Errorf("extra = %s", x.Extra)
	}
}

func TestImagesAndMIME(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	// A 4 MB PNG travels base64-encoded in one line of about 5.3 MB.
	evs := execute(t, k, `
import os
data = b'\x89PNG' + os.urandom(4 << 20)
class Img:
    def _repr_png_(self):
        return data
    def _repr_markdown_(self):
        return '**img**'
    def _repr_json_(self):
        return {'n': len(data)}
display(Img())
data.hex()[:64]`, nil)
	res := ofType(evs, "result")
	if len(res) != 2 || res[0].IsMainResult || !res[1].IsMainResult {
		t.Fatalf("results: %d", len(res))
	}
	png, err := base64.StdEncoding.DecodeString(res[0].PNG)
	if err != nil || len(png) != 4<<20+4 {
		t.Fatalf("png: %d bytes, %v", len(png), err)
	}
	if got := hex.EncodeToString(png)[:64]; got != res[1].text() {
		t.Errorf("png content differs: %s vs %s", got, res[1].text())
	}
	if res[0].Markdown != "**img**" || string(res[0].JSON) != fmt.Sprintf(`{"n":%d}`, len(png)) {
		t.Errorf("markdown %q json %s", res[0].Markdown, res[0].JSON)
	}
}

func TestStreams(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	tests := []struct {
		name, code, stdout, stderr string
	}{
		{"print", "print('hi')", "hi\n", ""},
		{"stderr", "import sys; print('oops', file=sys.stderr)", "", "oops\n"},
		{"os.system", "import os; os.system('echo x'); print('y')", "x\ny\n", ""},
		{"subprocess", "import subprocess; subprocess.run(['sh', '-c', 'echo out; echo err >&2'])", "out\n", "err\n"},
		{"fd write", "import os; os.write(1, b'raw\\n')", "raw\n", ""},
		{"buffer", "import sys; sys.stdout.buffer.write('h\\u00e9\\n'.encode())", "h\u00e9\n", ""},
		{"no newline", "print('partial', end='')", "partial", ""},
		{"unicode", "print('\u65e5\u672c')", "\u65e5\u672c\n", ""},
	}
	for _, tc := range tests {
		evs := execute(t, k, tc.code, nil)
		if got := streamText(evs, "stdout"); got != tc.stdout {
			t.Errorf("%s: stdout = %q, want %q", tc.name, got, tc.stdout)
		}
		if got := streamText(evs, "stderr"); got != tc.stderr {
			t.Errorf("%s: stderr = %q, want %q", tc.name, got, tc.stderr)
		}
		for _, e := range append(ofType(evs, "stdout"), ofType(evs, "stderr")...) {
			if _, err := time.Parse(time.RFC3339Nano, e.Timestamp); err != nil || !strings.HasSuffix(e.Timestamp, "+00:00") {
				t.Errorf("%s: bad timestamp %q", tc.name, e.Timestamp)
			}
		}
	}
}

func TestBackgroundOutput(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	// A thread and a process keep printing after the cell has ended: their output
	// goes to the executions running at the time and is dropped in between.
	execute(t, k, `
import threading, time, subprocess
def bg():
    for i in range(20):
        print('thread', i)
        time.sleep(0.01)
threading.Thread(target=bg).start()
subprocess.Popen(['sh', '-c', 'for i in 1 2 3 4 5; do echo proc $i; sleep 0.02; done'])
`, nil)
	time.Sleep(50 * time.Millisecond)
	execute(t, k, "time.sleep(0.05)", nil)
	time.Sleep(300 * time.Millisecond)
	evs := execute(t, k, "'quiet'", nil)
	if len(evs) != 3 {
		t.Fatalf("stray output in a later execution: %+v", evs)
	}
}

func TestPrintStreamsBeforeSleepEnds(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	start := time.Now()
	evs := execute(t, k, "import time\nprint('first')\ntime.sleep(1)\nprint('second')", nil)
	out := ofType(evs, "stdout")
	if len(out) != 2 || out[0].text() != "first\n" || out[1].text() != "second\n" {
		t.Fatalf("stdout events: %+v", out)
	}
	if d := out[0].at.Sub(start); d > 500*time.Millisecond {
		t.Errorf("first line arrived after %v, want it before the sleep ends", d)
	}
	if d := out[1].at.Sub(out[0].at); d < 800*time.Millisecond {
		t.Errorf("lines only %v apart", d)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	tests := []struct {
		code, name, value string
		tbHas             []string
	}{
		{"def f():\n    return 1 / 0\nf()", "ZeroDivisionError", "division by zero",
			[]string{"<cell In[1]>", "return 1 / 0", "f()", "ZeroDivisionError: division by zero"}},
		{"x = (", "SyntaxError", "", []string{"x = (", "SyntaxError"}},
		{"import sys\nsys.exit(3)", "SystemExit", "3", []string{"sys.exit(3)"}},
		{"exit()", "SystemExit", "", nil},
		{"raise ValueError('bad')", "ValueError", "bad", []string{"raise ValueError('bad')"}},
		{"undefined_name", "NameError", "name 'undefined_name' is not defined", []string{"undefined_name"}},
		{"class R:\n    def __repr__(self):\n        raise RuntimeError('repr')\nR()", "RuntimeError", "repr", []string{"raise RuntimeError('repr')"}},
	}
	for _, tc := range tests {
		evs := execute(t, k, tc.code, nil)
		e := oneError(t, evs)
		if *e.Name != tc.name || (tc.value != "" && *e.Value != tc.value) {
			t.Errorf("%q: error %s: %s, want %s: %s", tc.code, *e.Name, *e.Value, tc.name, tc.value)
		}
		for _, s := range tc.tbHas {
			if !strings.Contains(*e.Traceback, s) {
				t.Errorf("%q: traceback lacks %q:\n%s", tc.code, s, *e.Traceback)
			}
		}
		for _, s := range []string{"<string>", "kernel.py", "_run_code", "_execute"} {
			if strings.Contains(*e.Traceback, s) {
				t.Errorf("%q: traceback shows kernel frame %q:\n%s", tc.code, s, *e.Traceback)
			}
		}
		if mainResult(t, evs) != nil {
			t.Errorf("%q: result after error", tc.code)
		}
	}
	// Still alive after SystemExit.
	if r := mainResult(t, execute(t, k, "'alive'", nil)); r == nil || r.text() != "alive" {
		t.Fatal("kernel not usable after errors")
	}
}

func TestEnvVars(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := context.Background()
	if err := k.Configure(ctx, map[string]string{"FB_KEEP": "orig"}, ""); err != nil {
		t.Fatal(err)
	}
	tricky := `it's "quoted" \ and ''' and {} $HOME` + "\n" + `line2`
	code := "import os; print(os.environ.get('FB_NEW')); print(os.environ.get('FB_KEEP'))"
	evs := execute(t, k, code, map[string]string{"FB_NEW": tricky, "FB_KEEP": "override"})
	if got, want := streamText(evs, "stdout"), tricky+"\noverride\n"; got != want {
		t.Errorf("with env_vars: stdout %q, want %q", got, want)
	}
	evs = execute(t, k, code, nil)
	if got := streamText(evs, "stdout"); got != "None\norig\n" {
		t.Errorf("after: stdout %q", got)
	}
	// Restored even when the cell fails.
	execute(t, k, "raise ValueError()", map[string]string{"FB_KEEP": "x", "FB_NEW": "y"})
	if got := streamText(execute(t, k, code, nil), "stdout"); got != "None\norig\n" {
		t.Errorf("after error: stdout %q", got)
	}
}

func TestConfigure(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	dir := t.TempDir()
	if err := k.Configure(context.Background(), map[string]string{"FB_A": "1"}, dir); err != nil {
		t.Fatal(err)
	}
	evs := execute(t, k, "import os; os.getcwd() + ':' + os.environ['FB_A']", nil)
	if r := mainResult(t, evs); r == nil || r.text() != dir+":1" {
		t.Fatalf("got %+v, want %s:1", r, dir)
	}
	if err := k.Configure(context.Background(), nil, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Configure with a missing cwd succeeded")
	}
	// Files in the cwd are importable, as in Jupyter.
	if err := os.WriteFile(filepath.Join(dir, "fbmod.py"), []byte("V = 'imported'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := mainResult(t, execute(t, k, "import fbmod; fbmod.V", nil)); r == nil || r.text() != "imported" {
		t.Fatalf("import from cwd: %+v", r)
	}
}

func TestInterrupt(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	for _, code := range []string{"while True: pass", "import time; time.sleep(60)", "while True: print(1)", "import asyncio\nawait asyncio.sleep(60)"} {
		ctx, cancel := context.WithCancel(context.Background())
		var evs []event
		emit := collect(t, &evs)
		var once sync.Once
		err := k.Execute(ctx, code, nil, func(line []byte) error {
			once.Do(func() { time.AfterFunc(200*time.Millisecond, cancel) })
			return emit(line)
		})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%q: err = %v, want context.Canceled", code, err)
		}
		checkFraming(t, evs)
		if e := oneError(t, evs); *e.Name != "KeyboardInterrupt" {
			t.Fatalf("%q: error %s", code, *e.Name)
		}
	}
	if r := mainResult(t, execute(t, k, "1+1", nil)); r == nil || r.text() != "2" {
		t.Fatal("kernel not usable after interrupt")
	}
	// SIGINT while idle is ignored.
	if err := k.Interrupt(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if r := mainResult(t, execute(t, k, "2+2", nil)); r == nil || r.text() != "4" {
		t.Fatal("kernel not usable after idle interrupt")
	}
}

// TestCancelEarly cancels at once, before the kernel has even read the command.
func TestCancelEarly(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		var evs []event
		go func() {
			time.Sleep(time.Duration(i%5) * 200 * time.Microsecond)
			cancel()
		}()
		err := k.Execute(ctx, "while True: pass", nil, collect(t, &evs))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if len(evs) > 0 {
			checkFraming(t, evs)
			if e := oneError(t, evs); *e.Name != "KeyboardInterrupt" {
				t.Fatalf("error %s", *e.Name)
			}
		}
	}
	if r := mainResult(t, execute(t, k, "1+1", nil)); r == nil || r.text() != "2" {
		t.Fatal("kernel not usable")
	}
}

func TestEmitErrorInterrupts(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	errGone := errors.New("client gone")
	calls := 0
	err := k.Execute(context.Background(), "while True: print(1)", nil, func(line []byte) error {
		calls++
		if string(lineType(line)) == "stdout" {
			return errGone
		}
		return nil
	})
	if !errors.Is(err, errGone) {
		t.Fatalf("err = %v, want %v", err, errGone)
	}
	if calls != 2 {
		t.Errorf("emit called %d times after failing, want 2 calls in all", calls)
	}
	if r := mainResult(t, execute(t, k, "1+1", nil)); r == nil || r.text() != "2" {
		t.Fatal("kernel not usable")
	}
}

func TestConcurrentExecuteSerialized(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	const n = 5
	type span struct{ start, end float64 }
	spans := make([]span, n)
	counts := make([]int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var evs []event
			err := k.Execute(context.Background(), "import time\nt0 = time.time()\ntime.sleep(0.05)\nprint(t0, time.time())", nil, collect(t, &evs))
			if err != nil {
				t.Error(err)
				return
			}
			checkFraming(t, evs)
			counts[i] = evs[0].ExecutionCount
			fmt.Sscan(streamText(evs, "stdout"), &spans[i].start, &spans[i].end)
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for i, a := range spans {
		if seen[counts[i]] {
			t.Errorf("execution count %d twice", counts[i])
		}
		seen[counts[i]] = true
		for j, b := range spans {
			if i != j && a.start < b.end && b.start < a.end {
				t.Errorf("executions %d and %d overlap: %v %v", i, j, a, b)
			}
		}
	}
}

func TestLargeOutput(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	const size = 5 << 20
	evs := execute(t, k, fmt.Sprintf("print('x' * %d)\n'y' * %d", size, size), nil)
	if got := streamText(evs, "stdout"); len(got) != size+1 || strings.Trim(got, "x") != "\n" {
		t.Errorf("stdout: %d bytes, want %d", len(got), size+1)
	}
	if r := mainResult(t, evs); r == nil || len(r.text()) != size || strings.Trim(r.text(), "y") != "" {
		t.Errorf("result text wrong")
	}
	// Many small lines arrive complete and in order.
	evs = execute(t, k, "for i in range(100000): print(i)", nil)
	lines := strings.Split(streamText(evs, "stdout"), "\n")
	if len(lines) != 100001 || lines[99999] != "99999" || lines[54321] != "54321" {
		t.Errorf("got %d lines", len(lines))
	}
	t.Logf("100000 prints arrived in %d stdout events", len(ofType(evs, "stdout")))
}

func TestKernelDeath(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	var evs []event
	err := k.Execute(context.Background(), "print('bye')\nimport os, sys\nsys.stdout.flush()\nos._exit(3)", nil, collect(t, &evs))
	if !errors.Is(err, ErrKernelDied) {
		t.Fatalf("err = %v, want ErrKernelDied", err)
	}
	checkFraming(t, evs)
	if e := oneError(t, evs); *e.Name != "KernelDied" || !strings.Contains(*e.Value, "exit status 3") {
		t.Errorf("error = %s: %s", *e.Name, *e.Value)
	}
	if got := streamText(evs, "stdout"); got != "bye\n" {
		t.Errorf("stdout = %q", got)
	}
	select {
	case <-k.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}
	evs = nil
	if err := k.Execute(context.Background(), "1", nil, collect(t, &evs)); !errors.Is(err, ErrKernelDied) || len(evs) != 0 {
		t.Errorf("Execute on a dead kernel: %v, %d lines", err, len(evs))
	}
	if err := k.Configure(context.Background(), nil, "/"); !errors.Is(err, ErrKernelDied) {
		t.Errorf("Configure on a dead kernel: %v", err)
	}
}

func TestCloseEndsExecute(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	res := make(chan error, 1)
	var evs []event
	started := make(chan struct{})
	var once sync.Once
	emit := collect(t, &evs)
	go func() {
		res <- k.Execute(context.Background(), "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass", nil, func(line []byte) error {
			once.Do(func() { close(started) })
			return emit(line)
		})
	}()
	<-started
	time.Sleep(100 * time.Millisecond)
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	select {
	case err := <-res:
		if !errors.Is(err, ErrKernelDied) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Execute did not return after Close")
	}
	checkFraming(t, evs)
}

func TestKeepalive(t *testing.T) {
	t.Parallel()
	k := startKernel(t, func(c *Config) { c.KeepaliveInterval = 100 * time.Millisecond })
	evs := execute(t, k, "import time; time.sleep(0.55); print('done')", nil)
	if n := len(ofType(evs, "keepalive")); n < 3 || n > 6 {
		t.Errorf("%d keepalives, want about 5", n)
	}
	if evs[len(evs)-2].Type != "stdout" {
		t.Errorf("keepalive after output: %+v", evs)
	}
}

func TestModuleAndProcessGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := WriteModule(t.Context(), pythonPath(t), dir); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "__pycache__", moduleName+".*.pyc")); len(m) != 1 {
		t.Fatalf("compiled module: %v", m)
	}
	k := startKernel(t, func(c *Config) {
		c.ModuleDir = dir
		c.Prepare = func(cmd *exec.Cmd) error {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			return nil
		}
	})
	if !k.group {
		t.Fatal("kernel does not lead a process group")
	}
	// With a process group, an interrupt also reaches the shell's child.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	var evs []event
	startT := time.Now()
	err := k.Execute(ctx, "import os; os.system('sleep 30'); print('after')", nil, collect(t, &evs))
	if !errors.Is(err, context.Canceled) || time.Since(startT) > 10*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(startT))
	}
	if r := mainResult(t, execute(t, k, "__name__", nil)); r == nil || r.text() != "__main__" {
		t.Fatalf("__name__: %+v", r)
	}
}

func TestStartFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := Start(ctx, Config{Python: "/nonexistent/python"}); err == nil {
		t.Error("Start with a missing interpreter succeeded")
	}
	_, err := Start(ctx, Config{Python: "/bin/sh", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		t.Error("Start with a non-Python interpreter succeeded")
	}
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := Start(short, Config{Python: pythonPath(t)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start with an expired context: %v", err)
	}
}

func BenchmarkExecute(b *testing.B) {
	k := startKernel(b, nil)
	ctx := context.Background()
	emit := func([]byte) error { return nil }
	for b.Loop() {
		if err := k.Execute(ctx, "1+1", nil, emit); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStart(b *testing.B) {
	py := pythonPath(b)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := b.TempDir()
	if err := WriteModule(context.Background(), py, dir); err != nil {
		b.Fatal(err)
	}
	for _, moduleDir := range []string{"", dir} {
		b.Run(fmt.Sprintf("module=%v", moduleDir != ""), func(b *testing.B) {
			for b.Loop() {
				k, err := Start(context.Background(), Config{Python: py, Logger: log, ModuleDir: moduleDir})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer() // measure start-up to ready, not the kill and reap
				k.Close()
				b.StartTimer()
			}
		})
	}
}
