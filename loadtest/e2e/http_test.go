package e2e

// Plain net/http helpers shared by the Go-side checks.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

type rawResp struct {
	status int
	header http.Header
	body   []byte
}

func (r rawResp) String() string {
	b := r.body
	if len(b) > 400 {
		b = append(append([]byte{}, b[:400]...), "..."...)
	}
	return fmt.Sprintf("%d %q", r.status, b)
}

var httpClient = &http.Client{Timeout: 2 * time.Minute}

// do sends one request. Headers with an empty value are left out, so a test
// can drop the default X-API-KEY by passing "X-API-KEY": "".
func (hh *harness) do(t *testing.T, method, path string, headers map[string]string, body string) rawResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, hh.apiURL+path, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-API-KEY", hh.apiKey)
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return rawResp{status: resp.StatusCode, header: resp.Header, body: b}
}

// dataPlane builds the routing headers the SDKs send (E2b-Sandbox-Id/Port,
// X-Access-Token) and leaves out the API key, as the SDKs do.
func dataPlane(sandboxID, port, token string) map[string]string {
	return map[string]string{
		"X-API-KEY":        "",
		"E2b-Sandbox-Id":   sandboxID,
		"E2b-Sandbox-Port": port,
		"X-Access-Token":   token,
	}
}

// rawExchange writes a request on its own TCP connection while reading the
// response concurrently, so a server that answers (413) and closes before
// consuming a large body is still seen answering.
func rawExchange(addr string, head string, body []byte) (rawResp, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return rawResp{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	go func() {
		// Write errors (the server closing on us) are expected here.
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		_, _ = conn.Write(body)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return rawResp{}, fmt.Errorf("reading the response: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !isConnReset(err) {
		return rawResp{}, fmt.Errorf("reading the response body: %w", err)
	}
	return rawResp{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func isConnReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// checkErrorBody asserts the status is one of want and the body is the E2B
// error shape {"code": <status>, "message": "<non-empty>"}.
func checkErrorBody(t *testing.T, what string, r rawResp, want ...int) {
	t.Helper()
	ok := false
	for _, w := range want {
		ok = ok || r.status == w
	}
	if !ok {
		t.Errorf("%s: status %d, want one of %v; body %s", what, r.status, want, r)
		return
	}
	if ct := r.header.Get("Content-Type"); !strings.Contains(ct, "json") {
		t.Errorf("%s: error Content-Type %q, want application/json", what, ct)
	}
	var e map[string]any
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Errorf("%s: error body is not a JSON object (%v): %s", what, err, r)
		return
	}
	code, isNum := e["code"].(float64)
	if !isNum || int(code) != r.status {
		t.Errorf("%s: body code = %v, want the HTTP status %d (the JS SDK reads body.code, not the status); body %s", what, e["code"], r.status, r)
	}
	if msg, _ := e["message"].(string); strings.TrimSpace(msg) == "" {
		t.Errorf("%s: body has no non-empty \"message\": %s", what, r)
	}
}

// ---- sandboxes ----

type createdSandbox struct {
	SandboxID          string  `json:"sandboxID"`
	TemplateID         string  `json:"templateID"`
	ClientID           string  `json:"clientID"`
	EnvdVersion        string  `json:"envdVersion"`
	EnvdAccessToken    string  `json:"envdAccessToken"`
	TrafficAccessToken *string `json:"trafficAccessToken"`
	Alias              string  `json:"alias"`
}

var semverRe = regexp.MustCompile(`^\d+\.\d+\.\d+([-+].*)?$`)

// createSandbox creates a sandbox through POST /v2/sandboxes (what both
// pinned SDKs call), checks the response shape and kills it at cleanup.
func (hh *harness) createSandbox(t *testing.T, template string, extra map[string]any) createdSandbox {
	t.Helper()
	reqBody := map[string]any{"templateID": template, "timeout": 300}
	for k, v := range extra {
		reqBody[k] = v
	}
	b, _ := json.Marshal(reqBody)
	r := hh.do(t, "POST", "/v2/sandboxes", nil, string(b))
	if r.status != http.StatusCreated {
		t.Fatalf("POST /v2/sandboxes %s: got %s, want 201 (the Python SDK parses only 201)", b, r)
	}
	sb := checkSandboxShape(t, "POST /v2/sandboxes", r)
	t.Cleanup(func() {
		hh.killQuietly(sb.SandboxID)
	})
	return sb
}

func checkSandboxShape(t *testing.T, what string, r rawResp) createdSandbox {
	t.Helper()
	var sb createdSandbox
	if err := json.Unmarshal(r.body, &sb); err != nil {
		t.Fatalf("%s: body is not a Sandbox object: %v; %s", what, err, r)
	}
	if !sandboxIDRe.MatchString(sb.SandboxID) {
		t.Errorf("%s: sandboxID %q does not match %s", what, sb.SandboxID, sandboxIDPattern)
	}
	if sb.TemplateID == "" {
		t.Errorf("%s: templateID is empty (required by the SDKs)", what)
	}
	if sb.ClientID == "" {
		t.Errorf("%s: clientID is empty (required: Python's Sandbox.from_dict pops it)", what)
	}
	if !semverRe.MatchString(sb.EnvdVersion) {
		t.Errorf("%s: envdVersion %q is not a semver (the SDKs compare it)", what, sb.EnvdVersion)
	}
	if sb.EnvdAccessToken == "" {
		t.Errorf("%s: envdAccessToken is empty (v2 creates are always secured; the SDKs send it as X-Access-Token)", what)
	}
	if t.Failed() {
		t.FailNow()
	}
	return sb
}

func (hh *harness) killQuietly(id string) {
	req, _ := http.NewRequest("DELETE", hh.apiURL+"/sandboxes/"+id, nil)
	req.Header.Set("X-API-KEY", hh.apiKey)
	c := &http.Client{Timeout: 30 * time.Second}
	if resp, err := c.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// ---- /execute NDJSON ----

type ndLine struct {
	raw  []byte
	m    map[string]any
	typ  string
	text string
}

// readNDJSON reads the whole stream; every line must be a '\n'-terminated
// JSON object with a "type".
func readNDJSON(r io.Reader) ([]ndLine, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []ndLine
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			if b[len(b)-1] != '\n' {
				return out, fmt.Errorf("last line is not newline-terminated: %.200q", b)
			}
			l, perr := parseNDLine(b[:len(b)-1])
			if perr != nil {
				return out, perr
			}
			out = append(out, l)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func parseNDLine(b []byte) (ndLine, error) {
	b = bytes.TrimRight(b, "\r")
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return ndLine{}, fmt.Errorf("line is not a JSON object (%v): %.200q", err, b)
	}
	typ, _ := m["type"].(string)
	if typ == "" {
		return ndLine{}, fmt.Errorf("line has no \"type\": %.200q", b)
	}
	text, _ := m["text"].(string)
	return ndLine{raw: b, m: m, typ: typ, text: text}, nil
}

// checkStreamShape asserts the framing rules: number_of_executions first,
// end_of_execution last and only once, stdout/stderr with text+timestamp,
// error with name/value/traceback.
func checkStreamShape(t *testing.T, lines []ndLine) {
	t.Helper()
	if len(lines) < 2 {
		t.Fatalf("stream has %d lines, want at least number_of_executions and end_of_execution", len(lines))
	}
	if lines[0].typ != "number_of_executions" {
		t.Errorf("first line is %q, want number_of_executions: %s", lines[0].typ, lines[0].raw)
	} else if n, ok := lines[0].m["execution_count"].(float64); !ok || n < 1 {
		t.Errorf("number_of_executions has execution_count %v, want an integer >= 1", lines[0].m["execution_count"])
	}
	last := lines[len(lines)-1]
	if last.typ != "end_of_execution" {
		t.Errorf("last line is %q, want end_of_execution: %s", last.typ, last.raw)
	}
	for i, l := range lines {
		switch l.typ {
		case "end_of_execution":
			if i != len(lines)-1 {
				t.Errorf("end_of_execution at line %d of %d", i+1, len(lines))
			}
		case "stdout", "stderr":
			if _, ok := l.m["text"].(string); !ok {
				t.Errorf("%s line without string text: %s", l.typ, l.raw)
			}
			if ts, _ := l.m["timestamp"].(string); ts == "" {
				t.Errorf("%s line without timestamp (the Python SDK needs it): %.200s", l.typ, l.raw)
			}
		case "error":
			for _, k := range []string{"name", "value", "traceback"} {
				if _, ok := l.m[k].(string); !ok {
					t.Errorf("error line without string %q (the Python SDK indexes it): %s", k, l.raw)
				}
			}
		}
	}
}

func joinText(lines []ndLine, typ string) string {
	var sb strings.Builder
	for _, l := range lines {
		if l.typ == typ {
			sb.WriteString(l.text)
		}
	}
	return sb.String()
}

func linesOfType(lines []ndLine, typ string) []ndLine {
	var out []ndLine
	for _, l := range lines {
		if l.typ == typ {
			out = append(out, l)
		}
	}
	return out
}

// execute runs code through POST /execute and returns the parsed stream.
func (hh *harness) execute(t *testing.T, sb createdSandbox, body map[string]any) []ndLine {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", hh.apiURL+"/execute", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("E2b-Sandbox-Id", sb.SandboxID)
	req.Header.Set("E2b-Sandbox-Port", codeInterpreterPort)
	req.Header.Set("X-Access-Token", sb.EnvdAccessToken)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("POST /execute: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		eb, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /execute %s: status %d, body %.400q", b, resp.StatusCode, eb)
	}
	lines, err := readNDJSON(resp.Body)
	if err != nil {
		t.Fatalf("POST /execute %s: %v", b, err)
	}
	return lines
}

func metadataQuery(kv map[string]string) string {
	// What the SDKs send: the pairs form-encoded, then the whole string
	// encoded again as the value of ?metadata=.
	v := url.Values{}
	for k, val := range kv {
		v.Set(url.QueryEscape(k), url.QueryEscape(val))
	}
	return "metadata=" + url.QueryEscape(v.Encode())
}
