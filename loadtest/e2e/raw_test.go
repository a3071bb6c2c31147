package e2e

// Go-only checks through net/http: bad input, error shapes, response
// shapes the SDKs depend on, and the /execute NDJSON stream.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRawHTTP(t *testing.T) {
	defer stopOnPanic()
	hh := requireServer(t)

	// One live code-interpreter sandbox for the cases that need a real id.
	live := hh.createSandbox(t, templateCodeInterpeter, map[string]any{"metadata": map[string]string{"e2e": "raw-http"}})

	big := `{"templateID":"base","metadata":{"k":"` + strings.Repeat("x", 2<<20) + `"}}`
	wrongKey := "e2b_" + strings.Repeat("0", 32)

	cases := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		body    string
		want    []int
	}{
		// Authentication (control plane).
		{"no api key: list", "GET", "/v2/sandboxes", map[string]string{"X-API-KEY": ""}, "", []int{401}},
		{"wrong api key: list", "GET", "/v2/sandboxes", map[string]string{"X-API-KEY": wrongKey}, "", []int{401}},
		{"garbage api key: list", "GET", "/v2/sandboxes", map[string]string{"X-API-KEY": "not-a-key"}, "", []int{401}},
		{"no api key: create", "POST", "/v2/sandboxes", map[string]string{"X-API-KEY": ""}, `{"templateID":"base"}`, []int{401}},
		{"wrong api key: get", "GET", "/sandboxes/" + live.SandboxID, map[string]string{"X-API-KEY": wrongKey}, "", []int{401}},
		{"wrong api key: delete", "DELETE", "/sandboxes/" + live.SandboxID, map[string]string{"X-API-KEY": wrongKey}, "", []int{401}},

		// Malformed / invalid create bodies.
		{"malformed JSON: POST /sandboxes", "POST", "/sandboxes", nil, `{"templateID": "base",`, []int{400}},
		{"malformed JSON: POST /v2/sandboxes", "POST", "/v2/sandboxes", nil, `{"templateID": "base",`, []int{400}},
		{"body is not an object", "POST", "/v2/sandboxes", nil, `["base"]`, []int{400}},
		{"empty body", "POST", "/v2/sandboxes", map[string]string{"Content-Type": "application/json"}, "", []int{400}},
		{"missing templateID", "POST", "/v2/sandboxes", nil, `{"timeout":30}`, []int{400}},
		{"timeout of the wrong type", "POST", "/v2/sandboxes", nil, `{"templateID":"base","timeout":"x"}`, []int{400}},
		{"timeout of the wrong type (v1)", "POST", "/sandboxes", nil, `{"templateID":"base","timeout":"x"}`, []int{400}},
		{"metadata of the wrong type", "POST", "/v2/sandboxes", nil, `{"templateID":"base","metadata":"x"}`, []int{400}},
		{"metadata value of the wrong type", "POST", "/v2/sandboxes", nil, `{"templateID":"base","metadata":{"a":1}}`, []int{400}},
		{"envVars of the wrong type", "POST", "/v2/sandboxes", nil, `{"templateID":"base","envVars":["A=1"]}`, []int{400}},
		{"negative timeout", "POST", "/v2/sandboxes", nil, `{"templateID":"base","timeout":-5}`, []int{400}},
		{"negative timeout (v1)", "POST", "/sandboxes", nil, `{"templateID":"base","timeout":-5}`, []int{400}},
		{"unknown template", "POST", "/v2/sandboxes", nil, `{"templateID":"no-such-template-e2e"}`, []int{400, 404}},
		{"unknown template (v1)", "POST", "/sandboxes", nil, `{"templateID":"no-such-template-e2e"}`, []int{400, 404}},

		// Sandbox ids in paths.
		{"invalid sandbox id: get", "GET", "/sandboxes/ABC-!", nil, "", []int{400, 404}},
		{"invalid sandbox id: delete", "DELETE", "/sandboxes/ABC-!", nil, "", []int{400, 404}},
		{"invalid sandbox id: timeout", "POST", "/sandboxes/ABC-!/timeout", nil, `{"timeout":10}`, []int{400, 404}},
		{"invalid sandbox id: connect", "POST", "/v2/sandboxes/ABC-!/connect", nil, `{}`, []int{400, 404}},
		{"unknown sandbox: get", "GET", "/sandboxes/" + nonexistentSandboxID, nil, "", []int{404}},
		{"unknown sandbox: delete", "DELETE", "/sandboxes/" + nonexistentSandboxID, nil, "", []int{404}},
		{"unknown sandbox: timeout", "POST", "/sandboxes/" + nonexistentSandboxID + "/timeout", nil, `{"timeout":10}`, []int{404}},
		{"unknown sandbox: connect v2", "POST", "/v2/sandboxes/" + nonexistentSandboxID + "/connect", nil, `{}`, []int{404}},
		{"set timeout of the wrong type", "POST", "/sandboxes/" + live.SandboxID + "/timeout", nil, `{"timeout":"x"}`, []int{400}},
		{"negative set timeout", "POST", "/sandboxes/" + live.SandboxID + "/timeout", nil, `{"timeout":-1}`, []int{400}},
		{"malformed set timeout", "POST", "/sandboxes/" + live.SandboxID + "/timeout", nil, `{"timeout":`, []int{400}},

		// Data plane routing.
		{"data plane: unknown sandbox, envd /health", "GET", "/health", dataPlane(nonexistentSandboxID, envdPort, "x"), "", []int{502}},
		{"data plane: unknown sandbox, /execute", "POST", "/execute", dataPlane(nonexistentSandboxID, codeInterpreterPort, "x"), `{"code":"1"}`, []int{502}},
		{"data plane: unknown sandbox, /contexts", "GET", "/contexts", dataPlane(nonexistentSandboxID, codeInterpreterPort, ""), "", []int{502}},
		{"data plane: only E2b-Sandbox-Id", "GET", "/health", map[string]string{"X-API-KEY": "", "E2b-Sandbox-Id": live.SandboxID}, "", []int{400}},
		{"data plane: only E2b-Sandbox-Port", "GET", "/health", map[string]string{"X-API-KEY": "", "E2b-Sandbox-Port": envdPort}, "", []int{400}},
		{"data plane: only E2b-Sandbox-Id on /execute", "POST", "/execute", map[string]string{"X-API-KEY": "", "E2b-Sandbox-Id": live.SandboxID, "X-Access-Token": live.EnvdAccessToken}, `{"code":"1"}`, []int{400}},
		{"data plane: malformed sandbox id header", "GET", "/health", dataPlane("ABC-!", envdPort, ""), "", []int{400, 502}},
		{"data plane: wrong X-Access-Token on /execute", "POST", "/execute", dataPlane(live.SandboxID, codeInterpreterPort, "wrong-token"), `{"code":"1"}`, []int{401}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := hh.do(t, tc.method, tc.path, tc.headers, tc.body)
			checkErrorBody(t, fmt.Sprintf("%s %s", tc.method, tc.path), r, tc.want...)
			if strings.HasPrefix(tc.name, "unknown template") {
				var e struct{ Message string }
				_ = json.Unmarshal(r.body, &e)
				if !strings.Contains(strings.ToLower(e.Message), "template") {
					t.Errorf("unknown template: message %q does not say that the template is the problem", e.Message)
				}
			}
		})
	}

	t.Run("oversized create body (2 MiB)", func(t *testing.T) {
		head := fmt.Sprintf("POST /v2/sandboxes HTTP/1.1\r\nHost: %s\r\nX-API-KEY: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
			strings.TrimPrefix(hh.apiURL, "http://"), hh.apiKey, len(big))
		r, err := rawExchange(strings.TrimPrefix(hh.apiURL, "http://"), head, []byte(big))
		if err != nil {
			t.Fatalf("no HTTP response to a 2 MiB body: %v", err)
		}
		checkErrorBody(t, "POST /v2/sandboxes with 2 MiB", r, 413, 400)
	})

	t.Run("the live sandbox survived the rejected requests", func(t *testing.T) {
		r := hh.do(t, "GET", "/sandboxes/"+live.SandboxID, nil, "")
		if r.status != 200 {
			t.Fatalf("GET /sandboxes/%s after wrong-key DELETE: %s", live.SandboxID, r)
		}
	})

	t.Run("GET /sandboxes/{id} shape", func(t *testing.T) {
		r := hh.do(t, "GET", "/sandboxes/"+live.SandboxID, nil, "")
		if r.status != 200 {
			t.Fatalf("got %s", r)
		}
		m := decodeObject(t, r)
		checkListedFields(t, "SandboxDetail", m)
		if m["sandboxID"] != live.SandboxID {
			t.Errorf("sandboxID %v, want %s", m["sandboxID"], live.SandboxID)
		}
		if md, _ := m["metadata"].(map[string]any); md["e2e"] != "raw-http" {
			t.Errorf("metadata %v, want {e2e: raw-http}", m["metadata"])
		}
	})

	t.Run("GET /v2/sandboxes shape and metadata filter", func(t *testing.T) {
		r := hh.do(t, "GET", "/v2/sandboxes?"+metadataQuery(map[string]string{"e2e": "raw-http"}), nil, "")
		if r.status != 200 {
			t.Fatalf("got %s", r)
		}
		var items []map[string]any
		if err := json.Unmarshal(r.body, &items); err != nil {
			t.Fatalf("list body is not a JSON array: %v; %s", err, r)
		}
		found := false
		for _, it := range items {
			checkListedFields(t, "ListedSandbox", it)
			if md, _ := it["metadata"].(map[string]any); md["e2e"] != "raw-http" {
				t.Errorf("metadata filter e2e=raw-http returned %v", it["metadata"])
			}
			found = found || it["sandboxID"] == live.SandboxID
		}
		if !found {
			t.Errorf("list filtered by e2e=raw-http does not contain %s: %s", live.SandboxID, r)
		}
	})

	t.Run("set timeout then endAt", func(t *testing.T) {
		r := hh.do(t, "POST", "/sandboxes/"+live.SandboxID+"/timeout", nil, `{"timeout":600}`)
		if r.status != 204 || len(r.body) != 0 {
			t.Fatalf("POST timeout: got %s, want 204 with an empty body", r)
		}
		g := hh.do(t, "GET", "/sandboxes/"+live.SandboxID, nil, "")
		m := decodeObject(t, g)
		end, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["endAt"]))
		if err != nil {
			t.Fatalf("endAt %v: %v", m["endAt"], err)
		}
		if d := time.Until(end); d < 500*time.Second || d > 700*time.Second {
			t.Errorf("after timeout=600 endAt is %v from now, want about 600s", d.Round(time.Second))
		}
	})

	t.Run("v1 create, delete twice", func(t *testing.T) {
		r := hh.do(t, "POST", "/sandboxes", nil, `{"templateID":"base","timeout":60}`)
		if r.status != 201 {
			t.Fatalf("POST /sandboxes: got %s, want 201", r)
		}
		sb := checkSandboxShape(t, "POST /sandboxes", r)
		t.Cleanup(func() { hh.killQuietly(sb.SandboxID) })
		d1 := hh.do(t, "DELETE", "/sandboxes/"+sb.SandboxID, nil, "")
		if d1.status != 204 || len(d1.body) != 0 {
			t.Fatalf("first DELETE: got %s, want 204 with an empty body", d1)
		}
		d2 := hh.do(t, "DELETE", "/sandboxes/"+sb.SandboxID, nil, "")
		checkErrorBody(t, "second DELETE", d2, 404)
		g := hh.do(t, "GET", "/sandboxes/"+sb.SandboxID, nil, "")
		checkErrorBody(t, "GET after DELETE", g, 404)
		h := hh.do(t, "GET", "/health", dataPlane(sb.SandboxID, envdPort, sb.EnvdAccessToken), "")
		checkErrorBody(t, "envd /health after DELETE", h, 502)
	})

	t.Run("v2 connect to a running sandbox", func(t *testing.T) {
		r := hh.do(t, "POST", "/v2/sandboxes/"+live.SandboxID+"/connect", nil, `{}`)
		if r.status != 200 && r.status != 201 {
			t.Fatalf("POST /v2/sandboxes/{id}/connect: got %s, want 200", r)
		}
		sb := checkSandboxShape(t, "connect", r)
		if sb.SandboxID != live.SandboxID {
			t.Errorf("connect returned sandboxID %s, want %s", sb.SandboxID, live.SandboxID)
		}
		if sb.EnvdAccessToken != live.EnvdAccessToken {
			t.Errorf("connect returned a different envdAccessToken than create")
		}
	})

	t.Run("envd /health of a live sandbox", func(t *testing.T) {
		r := hh.do(t, "GET", "/health", dataPlane(live.SandboxID, envdPort, live.EnvdAccessToken), "")
		if r.status < 200 || r.status > 299 {
			t.Fatalf("got %s, want 2xx (isRunning() treats anything but 502 and 2xx as an error)", r)
		}
	})
}

func decodeObject(t *testing.T, r rawResp) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v; %s", err, r)
	}
	return m
}

// checkListedFields: the keys Python's ListedSandbox/SandboxDetail.from_dict
// pop without a default (a missing one is a KeyError in the SDK).
func checkListedFields(t *testing.T, what string, m map[string]any) {
	t.Helper()
	for _, k := range []string{"templateID", "sandboxID", "clientID", "envdVersion", "state"} {
		if s, _ := m[k].(string); s == "" {
			t.Errorf("%s: %q missing or not a non-empty string: %v", what, k, m)
		}
	}
	for _, k := range []string{"cpuCount", "memoryMB", "diskSizeMB"} {
		if _, ok := m[k].(float64); !ok {
			t.Errorf("%s: %q missing or not a number: %v", what, k, m[k])
		}
	}
	var started, ended time.Time
	for _, k := range []string{"startedAt", "endAt"} {
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m[k]))
		if err != nil {
			t.Errorf("%s: %q = %v is not RFC 3339: %v", what, k, m[k], err)
		}
		if k == "startedAt" {
			started = ts
		} else {
			ended = ts
		}
	}
	if !started.IsZero() && !ended.IsZero() && !ended.After(started) {
		t.Errorf("%s: endAt %v is not after startedAt %v", what, ended, started)
	}
	if st := m["state"]; st != "running" && st != "paused" {
		t.Errorf("%s: state %v, want running|paused", what, st)
	}
}

func TestRawExecute(t *testing.T) {
	defer stopOnPanic()
	hh := requireServer(t)
	sb := hh.createSandbox(t, templateCodeInterpeter, nil)

	t.Run("NDJSON order", func(t *testing.T) {
		lines := hh.execute(t, sb, map[string]any{"code": "print('alpha')\nprint('beta')\n40 + 2"})
		checkStreamShape(t, lines)
		if got := joinText(lines, "stdout"); got != "alpha\nbeta\n" {
			t.Errorf("stdout %q, want %q", got, "alpha\nbeta\n")
		}
		results := linesOfType(lines, "result")
		if len(results) != 1 || results[0].text != "42" || results[0].m["is_main_result"] != true {
			t.Errorf("results %v, want one main result with text 42", rawLines(results))
		}
		if e := linesOfType(lines, "error"); len(e) != 0 {
			t.Errorf("unexpected error lines %v", rawLines(e))
		}
		// stdout precedes the main result.
		lastStdout, resultAt := -1, -1
		for i, l := range lines {
			if l.typ == "stdout" {
				lastStdout = i
			}
			if l.typ == "result" {
				resultAt = i
			}
		}
		if resultAt < lastStdout {
			t.Errorf("the main result (line %d) came before stdout (line %d)", resultAt+1, lastStdout+1)
		}
	})

	t.Run("execution count increases", func(t *testing.T) {
		a := hh.execute(t, sb, map[string]any{"code": "1"})
		b := hh.execute(t, sb, map[string]any{"code": "2"})
		checkStreamShape(t, a)
		checkStreamShape(t, b)
		na, _ := a[0].m["execution_count"].(float64)
		nb, _ := b[0].m["execution_count"].(float64)
		if nb <= na {
			t.Errorf("execution_count %v then %v, want increasing", na, nb)
		}
	})

	t.Run("error line", func(t *testing.T) {
		lines := hh.execute(t, sb, map[string]any{"code": "1/0"})
		checkStreamShape(t, lines)
		errs := linesOfType(lines, "error")
		if len(errs) != 1 {
			t.Fatalf("got %d error lines, want 1: %v", len(errs), rawLines(lines))
		}
		e := errs[0].m
		if e["name"] != "ZeroDivisionError" || !strings.Contains(fmt.Sprint(e["value"]), "division by zero") || fmt.Sprint(e["traceback"]) == "" {
			t.Errorf("error line %s, want ZeroDivisionError / division by zero / non-empty traceback", errs[0].raw)
		}
	})

	t.Run("stderr and env_vars", func(t *testing.T) {
		val := `it's "quoted" \ $HOME ` + "`x`"
		lines := hh.execute(t, sb, map[string]any{
			"code":     "import os, sys\nprint(os.environ.get('E2E_RAW_ENV'))\nprint('to-stderr', file=sys.stderr)",
			"env_vars": map[string]string{"E2E_RAW_ENV": val},
		})
		checkStreamShape(t, lines)
		if got := joinText(lines, "stdout"); got != val+"\n" {
			t.Errorf("env var round trip: stdout %q, want %q", got, val+"\n")
		}
		if got := joinText(lines, "stderr"); got != "to-stderr\n" {
			t.Errorf("stderr %q, want %q", got, "to-stderr\n")
		}
		again := hh.execute(t, sb, map[string]any{"code": "import os\nprint(os.environ.get('E2E_RAW_ENV', '<unset>'))"})
		if got := joinText(again, "stdout"); got != "<unset>\n" {
			t.Errorf("env_vars leaked into the next execution: %q", got)
		}
	})

	t.Run("5 MB output arrives complete", func(t *testing.T) {
		lines := hh.execute(t, sb, map[string]any{"code": "print('x'*5_000_000)"})
		checkStreamShape(t, lines)
		got := joinText(lines, "stdout")
		want := 5_000_000 + 1
		if len(got) != want || strings.Trim(got, "x") != "\n" || got[len(got)-1] != '\n' {
			t.Errorf("stdout has %d bytes (%d 'x'), want %d", len(got), strings.Count(got, "x"), want)
		}
	})

	t.Run("slow reader gets every line in order", func(t *testing.T) {
		const n = 20000
		code := fmt.Sprintf("for i in range(%d):\n    print(f'{i:06d} ' + 'y'*90)", n)
		b, _ := json.Marshal(map[string]any{"code": code})
		req, _ := http.NewRequest("POST", hh.apiURL+"/execute", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("E2b-Sandbox-Id", sb.SandboxID)
		req.Header.Set("E2b-Sandbox-Port", codeInterpreterPort)
		req.Header.Set("X-Access-Token", sb.EnvdAccessToken)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		// Let the server run into back-pressure, then read in small sips.
		time.Sleep(2 * time.Second)
		lines, err := readNDJSON(&slowReader{r: resp.Body, chunk: 4096, pause: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		checkStreamShape(t, lines)
		checkNumberedLines(t, joinText(lines, "stdout"), n)
	})

	t.Run("unknown context is 404", func(t *testing.T) {
		b, _ := json.Marshal(map[string]any{"code": "1", "context_id": "no-such-context"})
		r := hh.do(t, "POST", "/execute", dataPlane(sb.SandboxID, codeInterpreterPort, sb.EnvdAccessToken), string(b))
		if r.status != 404 {
			t.Errorf("got %s, want 404 (the SDKs map it to NotFoundError)", r)
		}
	})

	t.Run("contexts API shapes", func(t *testing.T) {
		dp := dataPlane(sb.SandboxID, codeInterpreterPort, "")
		r := hh.do(t, "POST", "/contexts", dp, `{}`)
		if r.status < 200 || r.status > 299 {
			t.Fatalf("POST /contexts without X-Access-Token (the SDKs never send it there): %s, want 200", r)
		}
		ctx := decodeObject(t, r)
		for _, k := range []string{"id", "language", "cwd"} {
			if _, ok := ctx[k].(string); !ok {
				t.Errorf("context %v lacks string %q (Python's Context.from_json indexes it)", ctx, k)
			}
		}
		id := fmt.Sprint(ctx["id"])
		if ctx["language"] != "python" {
			t.Errorf("default context language %v, want python", ctx["language"])
		}
		l := hh.do(t, "GET", "/contexts", dp, "")
		var list []map[string]any
		if err := json.Unmarshal(l.body, &list); l.status != 200 || err != nil {
			t.Fatalf("GET /contexts: %s (%v)", l, err)
		}
		found := false
		for _, c := range list {
			found = found || c["id"] == id
			for _, k := range []string{"id", "language", "cwd"} {
				if _, ok := c[k].(string); !ok {
					t.Errorf("listed context %v lacks string %q", c, k)
				}
			}
		}
		if !found {
			t.Errorf("GET /contexts does not list the new context %s: %s", id, l)
		}
		if r := hh.do(t, "POST", "/contexts/"+id+"/restart", dp, ""); r.status < 200 || r.status > 299 {
			t.Errorf("restart: %s, want 200", r)
		}
		if r := hh.do(t, "DELETE", "/contexts/"+id, dp, ""); r.status < 200 || r.status > 299 {
			t.Errorf("delete: %s, want 200", r)
		}
		if r := hh.do(t, "DELETE", "/contexts/"+id, dp, ""); r.status != 404 {
			t.Errorf("second delete: %s, want 404", r)
		}
		if r := hh.do(t, "POST", "/contexts/"+id+"/restart", dp, ""); r.status != 404 {
			t.Errorf("restart of a removed context: %s, want 404", r)
		}
	})
}

func rawLines(ls []ndLine) []string {
	var out []string
	for _, l := range ls {
		s := string(l.raw)
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		out = append(out, s)
	}
	return out
}

// checkNumberedLines: stdout must be exactly lines "000000 yyy…" .. n-1.
func checkNumberedLines(t *testing.T, stdout string, n int) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(stdout))
	i := 0
	want := strings.Repeat("y", 90)
	for sc.Scan() {
		exp := fmt.Sprintf("%06d %s", i, want)
		if sc.Text() != exp {
			t.Fatalf("stdout line %d is %.120q, want %.120q", i, sc.Text(), exp)
		}
		i++
	}
	if i != n {
		t.Fatalf("got %d stdout lines, want %d", i, n)
	}
}

// slowReader throttles reads to about chunk bytes per pause.
type slowReader struct {
	r     io.Reader
	chunk int
	pause time.Duration
	since int // bytes read since the last pause
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.since >= s.chunk {
		time.Sleep(s.pause)
		s.since = 0
	}
	if len(p) > s.chunk-s.since {
		p = p[:s.chunk-s.since]
	}
	n, err := s.r.Read(p)
	s.since += n
	return n, err
}
