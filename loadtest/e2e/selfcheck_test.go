package e2e

// Self-checks of the harness's own machinery (WebSocket client, raw HTTP
// exchange, NDJSON reader). They need no fleetbox server, so they also run
// under -short. The process machinery (leak sweep, watchdog) is checked in
// internal/system.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSelfCheckWebSocketClient(t *testing.T) {
	serverErr := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Access-Token") != "good" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			_, _ = io.WriteString(w, `{"code":401,"message":"bad token"}`)
			return
		}
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			serverErr <- err
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", wsAccept(r.Header.Get("Sec-WebSocket-Key")))
		_ = brw.Flush()
		sc := &wsConn{conn: conn, br: brw.Reader}
		op, data, _, err := sc.readMessage(sc.br)
		if err != nil || op != opText {
			serverErr <- fmt.Errorf("server read: op %x err %v", op, err)
			return
		}
		var req struct{ Code string }
		if err := json.Unmarshal(data, &req); err != nil {
			serverErr <- err
			return
		}
		_ = sc.writeFrame(opPing, []byte("hi"))
		_ = sc.writeFrameFin(false, opText, []byte(`{"type":"number_of_`))
		_ = sc.writeFrameFin(true, opCont, []byte(`executions","execution_count":1}`))
		line, _ := json.Marshal(map[string]string{"type": "stdout", "text": "echo: " + req.Code + "\n", "timestamp": "2026-01-01T00:00:00Z"})
		_ = sc.writeFrame(opText, line)
		big, _ := json.Marshal(map[string]string{"type": "stdout", "text": strings.Repeat("z", 70000), "timestamp": "2026-01-01T00:00:00Z"})
		_ = sc.writeFrame(opText, big) // 64-bit length encoding path
		_ = sc.writeFrame(opText, []byte(`{"type": "end_of_execution"}`))
		_ = sc.writeFrame(opClose, []byte{0x03, 0xE8})
		op, _, code, err := sc.readMessage(sc.br)
		if err != nil || op != opClose || code != 1000 {
			serverErr <- fmt.Errorf("server expected the close reply: op %x code %d err %v", op, code, err)
			return
		}
		if sc.pongsSeen != 1 {
			serverErr <- fmt.Errorf("server saw %d pongs, want 1", sc.pongsSeen)
			return
		}
		serverErr <- nil
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	c, r, err := wsDial(addr, "/execute/ws", map[string]string{"X-Access-Token": "bad"})
	if err != nil || c != nil || r.status != 401 {
		t.Fatalf("refused handshake: conn %v resp %s err %v", c != nil, r, err)
	}
	checkErrorBody(t, "refused handshake", r, 401)

	c, r, err = wsDial(addr, "/execute/ws", map[string]string{"X-Access-Token": "good"})
	if err != nil || c == nil {
		t.Fatalf("handshake: %v %s", err, r)
	}
	res := runWS(t, c, map[string]any{"code": "1+1"}, 0)
	if err := <-serverErr; err != nil {
		t.Fatal(err)
	}
	checkStreamShape(t, res.lines)
	if res.closeCode != 1000 || !res.eofAfter || c.pongs != 1 {
		t.Errorf("close %d eof %v pongs %d", res.closeCode, res.eofAfter, c.pongs)
	}
	if got := joinText(res.lines, "stdout"); got != "echo: 1+1\n"+strings.Repeat("z", 70000) {
		t.Errorf("stdout %.80q", got)
	}
}

func TestSelfCheckRawExchange(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if _, err := io.ReadAll(r.Body); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(413)
			_, _ = io.WriteString(w, `{"code":413,"message":"body too large"}`)
			return
		}
		w.WriteHeader(204)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	body := []byte(strings.Repeat("a", 8<<20))
	head := fmt.Sprintf("POST /x HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", addr, len(body))
	r, err := rawExchange(addr, head, body)
	if err != nil {
		t.Fatal(err)
	}
	checkErrorBody(t, "oversized", r, 413)
}

func TestSelfCheckNDJSON(t *testing.T) {
	good := "{\"type\":\"number_of_executions\",\"execution_count\":1}\n{\"type\":\"stdout\",\"text\":\"a\\n\",\"timestamp\":\"t\"}\n{\"type\": \"end_of_execution\"}\n"
	lines, err := readNDJSON(strings.NewReader(good))
	if err != nil || len(lines) != 3 || joinText(lines, "stdout") != "a\n" {
		t.Fatalf("good stream: %v %v", lines, err)
	}
	checkStreamShape(t, lines)
	for name, bad := range map[string]string{
		"unterminated": "{\"type\":\"end_of_execution\"}",
		"not json":     "hello\n",
		"no type":      "{\"text\":\"a\"}\n",
		"two objects":  "{\"type\":\"a\"}{\"type\":\"b\"}\n",
	} {
		if _, err := readNDJSON(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: accepted %q", name, bad)
		}
	}
}
