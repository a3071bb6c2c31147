package e2e

// A minimal RFC 6455 client (stdlib only) and the checks of the
// GET /execute/ws endpoint.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

const (
	opCont  = 0x0
	opText  = 0x1
	opBin   = 0x2
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

type wsConn struct {
	conn   net.Conn
	br     *bufio.Reader
	client bool // clients mask what they send; servers must not
	wmu    sync.Mutex
	// pongs counts pongs we sent in reply to pings, pongsSeen the pongs we
	// received (both for the self-check).
	pongs, pongsSeen int
}

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsDial performs the opening handshake on a fresh TCP connection. On any
// status other than 101 it returns the response (and no connection).
func wsDial(addr, target string, headers map[string]string) (*wsConn, rawResp, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, rawResp{}, err
	}
	kb := make([]byte, 16)
	_, _ = rand.Read(kb)
	key := base64.StdEncoding.EncodeToString(kb)
	var sb strings.Builder
	fmt.Fprintf(&sb, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", target, addr, key)
	for k, v := range headers {
		if v != "" {
			fmt.Fprintf(&sb, "%s: %s\r\n", k, v)
		}
	}
	sb.WriteString("\r\n")
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, sb.String()); err != nil {
		conn.Close()
		return nil, rawResp{}, err
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		conn.Close()
		return nil, rawResp{}, fmt.Errorf("reading the handshake response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		conn.Close()
		return nil, rawResp{status: resp.StatusCode, header: resp.Header, body: b}, nil
	}
	r := rawResp{status: resp.StatusCode, header: resp.Header}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || !headerHasToken(resp.Header, "Connection", "upgrade") {
		conn.Close()
		return nil, r, fmt.Errorf("101 without Upgrade: websocket / Connection: Upgrade: %v", resp.Header)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != wsAccept(key) {
		conn.Close()
		return nil, r, fmt.Errorf("Sec-WebSocket-Accept %q, want %q", got, wsAccept(key))
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		conn.Close()
		return nil, r, fmt.Errorf("server negotiated extensions %q we did not offer", ext)
	}
	_ = conn.SetDeadline(time.Time{})
	return &wsConn{conn: conn, br: br, client: true}, r, nil
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), token) {
				return true
			}
		}
	}
	return false
}

func (c *wsConn) writeFrame(op byte, payload []byte) error {
	return c.writeFrameFin(true, op, payload)
}

func (c *wsConn) writeFrameFin(fin bool, op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	hdr := make([]byte, 0, 14)
	b0 := op
	if fin {
		b0 |= 0x80
	}
	hdr = append(hdr, b0)
	var mbit byte
	if c.client {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, mbit|byte(n))
	case n <= 0xffff:
		hdr = append(hdr, mbit|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, mbit|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	data := payload
	if c.client {
		var key [4]byte
		_, _ = rand.Read(key[:])
		hdr = append(hdr, key[:]...)
		data = make([]byte, len(payload))
		for i := range payload {
			data[i] = payload[i] ^ key[i%4]
		}
	}
	if _, err := c.conn.Write(append(hdr, data...)); err != nil {
		return err
	}
	return nil
}

const wsMaxPayload = 64 << 20

func (c *wsConn) readFrame(r io.Reader) (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	fin = h[0]&0x80 != 0
	if h[0]&0x70 != 0 {
		return fin, 0, nil, fmt.Errorf("frame with RSV bits 0x%x set (no extension was negotiated)", h[0]&0x70)
	}
	op = h[0] & 0x0f
	masked := h[1]&0x80 != 0
	if c.client && masked {
		return fin, op, nil, errors.New("server sent a masked frame (RFC 6455 5.1 forbids it)")
	}
	if !c.client && !masked {
		return fin, op, nil, errors.New("client sent an unmasked frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > wsMaxPayload {
		return fin, op, nil, fmt.Errorf("frame of %d bytes", n)
	}
	var key [4]byte
	if masked {
		if _, err = io.ReadFull(r, key[:]); err != nil {
			return
		}
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return fin, op, payload, nil
}

// readMessage returns the next data message (fragments joined) or, for a
// close frame, op == opClose with the close code. Pings are answered.
func (c *wsConn) readMessage(r io.Reader) (op byte, data []byte, closeCode int, err error) {
	var msgOp byte
	var buf []byte
	inMsg := false
	for {
		fin, fop, payload, err := c.readFrame(r)
		if err != nil {
			return 0, nil, 0, err
		}
		if fop >= 0x8 { // control
			if !fin || len(payload) > 125 {
				return 0, nil, 0, fmt.Errorf("invalid control frame (op %x, fin %v, %d bytes)", fop, fin, len(payload))
			}
			switch fop {
			case opPing:
				c.pongs++
				if err := c.writeFrame(opPong, payload); err != nil {
					return 0, nil, 0, err
				}
			case opPong:
				c.pongsSeen++
			case opClose:
				code := 1005
				if len(payload) >= 2 {
					code = int(binary.BigEndian.Uint16(payload))
				} else if len(payload) == 1 {
					return 0, nil, 0, errors.New("close frame with a 1-byte payload")
				}
				return opClose, payload, code, nil
			default:
				return 0, nil, 0, fmt.Errorf("unknown control opcode %x", fop)
			}
			continue
		}
		switch fop {
		case opText, opBin:
			if inMsg {
				return 0, nil, 0, errors.New("new data frame inside a fragmented message")
			}
			msgOp, inMsg = fop, true
		case opCont:
			if !inMsg {
				return 0, nil, 0, errors.New("continuation frame without a message")
			}
		default:
			return 0, nil, 0, fmt.Errorf("unknown data opcode %x", fop)
		}
		buf = append(buf, payload...)
		if fin {
			if msgOp == opText && !utf8.Valid(buf) {
				return 0, nil, 0, errors.New("text message is not valid UTF-8")
			}
			return msgOp, buf, 0, nil
		}
	}
}

func (c *wsConn) close() { c.conn.Close() }

// wsRunResult is everything one /execute/ws exchange produced.
type wsRunResult struct {
	lines     []ndLine
	closeCode int
	eofAfter  bool // the server closed the TCP connection after the close handshake
}

// runWS sends one execute request and reads until the close frame.
// pause (if > 0) is waited before reading anything, and the reads are then
// throttled, to act as a slow client.
func runWS(t *testing.T, c *wsConn, body map[string]any, pause time.Duration) wsRunResult {
	t.Helper()
	defer c.close()
	b, _ := json.Marshal(body)
	if err := c.writeFrame(opText, b); err != nil {
		t.Fatalf("sending the request frame: %v", err)
	}
	var r io.Reader = c.br
	if pause > 0 {
		time.Sleep(pause)
		r = &slowReader{r: c.br, chunk: 4096, pause: time.Millisecond}
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(3 * time.Minute))
	var res wsRunResult
	for {
		op, data, code, err := c.readMessage(r)
		if err != nil {
			t.Fatalf("after %d messages: %v (a normal end is a close frame with code 1000)", len(res.lines), err)
		}
		if op == opClose {
			res.closeCode = code
			_ = c.writeFrame(opClose, data[:min(2, len(data))])
			break
		}
		if op != opText {
			t.Fatalf("message %d is binary, want one text frame per NDJSON line", len(res.lines)+1)
		}
		l, err := parseNDLine([]byte(strings.TrimRight(string(data), "\n")))
		if err != nil {
			t.Fatalf("message %d: %v", len(res.lines)+1, err)
		}
		res.lines = append(res.lines, l)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c.br)
	// EOF, or a reset if our close reply reached an already closed socket.
	res.eofAfter = err == nil || isConnReset(err)
	return res
}

func TestWebSocketExecute(t *testing.T) {
	defer stopOnPanic()
	hh := requireServer(t)
	sb := hh.createSandbox(t, templateCodeInterpeter, nil)
	addr := strings.TrimPrefix(hh.apiURL, "http://")
	headers := map[string]string{
		"E2b-Sandbox-Id":   sb.SandboxID,
		"E2b-Sandbox-Port": codeInterpreterPort,
		"X-Access-Token":   sb.EnvdAccessToken,
	}
	dial := func(t *testing.T, target string, hdr map[string]string) *wsConn {
		t.Helper()
		c, r, err := wsDial(addr, target, hdr)
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		if c == nil {
			t.Fatalf("GET %s: handshake refused: %s", target, r)
		}
		return c
	}
	checkNormal := func(t *testing.T, res wsRunResult) {
		t.Helper()
		checkStreamShape(t, res.lines)
		if res.closeCode != 1000 {
			t.Errorf("close code %d, want 1000 (normal closure)", res.closeCode)
		}
		if !res.eofAfter {
			t.Errorf("the server did not close the TCP connection after the close handshake")
		}
	}

	t.Run("routing by headers", func(t *testing.T) {
		res := runWS(t, dial(t, "/execute/ws", headers), map[string]any{"code": "print('alpha')\nprint('beta')\n40 + 2"}, 0)
		checkNormal(t, res)
		if got := joinText(res.lines, "stdout"); got != "alpha\nbeta\n" {
			t.Errorf("stdout %q", got)
		}
		if rs := linesOfType(res.lines, "result"); len(rs) != 1 || rs[0].text != "42" {
			t.Errorf("results %v, want one with text 42", rawLines(rs))
		}
	})

	t.Run("routing by query parameters", func(t *testing.T) {
		q := url.Values{"sandboxId": {sb.SandboxID}, "accessToken": {sb.EnvdAccessToken}}
		res := runWS(t, dial(t, "/execute/ws?"+q.Encode(), nil), map[string]any{"code": "ws_shared = 7\nprint('ok')"}, 0)
		checkNormal(t, res)
		if got := joinText(res.lines, "stdout"); got != "ok\n" {
			t.Errorf("stdout %q", got)
		}
		// Same default context as POST /execute.
		lines := hh.execute(t, sb, map[string]any{"code": "ws_shared * 6"})
		if rs := linesOfType(lines, "result"); len(rs) != 1 || rs[0].text != "42" {
			t.Errorf("state set over the WebSocket is not visible to POST /execute: %v", rawLines(lines))
		}
	})

	t.Run("error and env_vars", func(t *testing.T) {
		res := runWS(t, dial(t, "/execute/ws", headers), map[string]any{
			"code":     "import os\nprint(os.environ['E2E_WS_ENV'])\n1/0",
			"env_vars": map[string]string{"E2E_WS_ENV": "from-ws"},
		}, 0)
		checkNormal(t, res)
		if got := joinText(res.lines, "stdout"); got != "from-ws\n" {
			t.Errorf("stdout %q", got)
		}
		if es := linesOfType(res.lines, "error"); len(es) != 1 || es[0].m["name"] != "ZeroDivisionError" {
			t.Errorf("error lines %v, want one ZeroDivisionError", rawLines(es))
		}
	})

	t.Run("slow reader gets every line in order", func(t *testing.T) {
		const n = 20000
		code := fmt.Sprintf("for i in range(%d):\n    print(f'{i:06d} ' + 'y'*90)", n)
		res := runWS(t, dial(t, "/execute/ws", headers), map[string]any{"code": code}, 2*time.Second)
		checkNormal(t, res)
		checkNumberedLines(t, joinText(res.lines, "stdout"), n)
	})

	t.Run("wrong access token", func(t *testing.T) {
		c, r, err := wsDial(addr, "/execute/ws", map[string]string{
			"E2b-Sandbox-Id": sb.SandboxID, "E2b-Sandbox-Port": codeInterpreterPort, "X-Access-Token": "wrong-token",
		})
		if err != nil {
			t.Fatal(err)
		}
		if c != nil {
			c.close()
			t.Fatalf("handshake with a wrong token was accepted")
		}
		checkErrorBody(t, "GET /execute/ws with a wrong token", r, 401)
		q := url.Values{"sandboxId": {sb.SandboxID}, "accessToken": {"wrong-token"}}
		c, r, err = wsDial(addr, "/execute/ws?"+q.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c != nil {
			c.close()
			t.Fatalf("handshake with a wrong accessToken query parameter was accepted")
		}
		checkErrorBody(t, "GET /execute/ws?accessToken=wrong", r, 401)
	})

	t.Run("unknown sandbox", func(t *testing.T) {
		c, r, err := wsDial(addr, "/execute/ws", map[string]string{
			"E2b-Sandbox-Id": nonexistentSandboxID, "E2b-Sandbox-Port": codeInterpreterPort, "X-Access-Token": "x",
		})
		if err != nil {
			t.Fatal(err)
		}
		if c != nil {
			c.close()
			t.Fatalf("handshake for an unknown sandbox was accepted")
		}
		checkErrorBody(t, "GET /execute/ws for an unknown sandbox", r, 502)
	})

	t.Run("client that goes away interrupts the code", func(t *testing.T) {
		hh.execute(t, sb, map[string]any{"code": "ws_before = 41"})
		c := dial(t, "/execute/ws", headers)
		if err := c.writeFrame(opText, []byte(busyLoop)); err != nil {
			t.Fatal(err)
		}
		// Wait until the loop runs (its stdout arrived), then vanish.
		_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			op, data, _, err := c.readMessage(c.br)
			if err != nil || op != opText {
				t.Fatalf("waiting for the loop's first output: op %x %q %v", op, data, err)
			}
			if l, err := parseNDLine(data); err == nil && l.typ == "stdout" {
				break
			}
		}
		c.close() // abrupt: no close frame
		expectResponsiveAfterAbort(t, hh, sb, "ws_before + 1", "42")
	})
}

// expectResponsiveAfterAbort: after a client abandoned a busy-looping
// execution, the next one must run (the server interrupted the kernel) and
// keep the state from before.
func expectResponsiveAfterAbort(t *testing.T, hh *harness, sb createdSandbox, code, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, _ := json.Marshal(map[string]any{"code": code})
	req, _ := http.NewRequestWithContext(ctx, "POST", hh.apiURL+"/execute", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("E2b-Sandbox-Id", sb.SandboxID)
	req.Header.Set("E2b-Sandbox-Port", codeInterpreterPort)
	req.Header.Set("X-Access-Token", sb.EnvdAccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("next execution after the client went away: %v (was the busy loop interrupted?)", err)
	}
	defer resp.Body.Close()
	lines, err := readNDJSON(resp.Body)
	if err != nil {
		t.Fatalf("next execution after the client went away: %v (was the busy loop interrupted?)", err)
	}
	checkStreamShape(t, lines)
	if rs := linesOfType(lines, "result"); len(rs) != 1 || rs[0].text != want {
		t.Errorf("next execution after the abort: %v, want result %q (state kept across an interrupt)", rawLines(lines), want)
	}
}

// busyLoop prints once (so the client knows it runs) and spins.
const busyLoop = `{"code":"print('looping')\nwhile True:\n    pass"}`

func TestAbortedExecuteInterrupts(t *testing.T) {
	defer stopOnPanic()
	hh := requireServer(t)
	sb := hh.createSandbox(t, templateCodeInterpeter, nil)
	hh.execute(t, sb, map[string]any{"code": "http_before = 41"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := time.AfterFunc(30*time.Second, cancel) // output must be streamed
	req, _ := http.NewRequestWithContext(ctx, "POST", hh.apiURL+"/execute", strings.NewReader(busyLoop))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("E2b-Sandbox-Id", sb.SandboxID)
	req.Header.Set("E2b-Sandbox-Port", codeInterpreterPort)
	req.Header.Set("X-Access-Token", sb.EnvdAccessToken)
	// A client of its own so that cancelling closes this TCP connection.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST /execute of a busy loop: %v (response headers must be sent before the code finishes)", err)
	}
	br := bufio.NewReader(resp.Body)
	for i := 0; ; i++ {
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("the loop's output did not arrive while it runs (lines must be flushed as they happen): %v", err)
		}
		l, err := parseNDLine(line[:len(line)-1])
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && l.typ != "number_of_executions" {
			t.Errorf("first line %s, want number_of_executions", line)
		}
		if l.typ == "stdout" {
			break
		}
	}
	stop.Stop()
	cancel()
	resp.Body.Close()
	expectResponsiveAfterAbort(t, hh, sb, "http_before + 1", "42")
}
