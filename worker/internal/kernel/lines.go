package kernel

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
)

var (
	endLine       = []byte(`{"type":"end_of_execution"}`)
	keepaliveLine = []byte(`{"type":"keepalive"}`)
	typePrefix    = []byte(`{"type":"`)
)

// lineType returns the "type" of an event line. The kernel always writes the type
// first, so this rarely needs to parse the (possibly multi-megabyte) line.
func lineType(line []byte) []byte {
	if rest, ok := bytes.CutPrefix(line, typePrefix); ok {
		if i := bytes.IndexByte(rest, '"'); i >= 0 {
			return rest[:i]
		}
	}
	var v struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(line, &v)
	return []byte(v.Type)
}

// errorLine is an E2B error line with all three fields present.
func errorLine(name, value string) []byte {
	b, _ := json.Marshal(struct {
		Type      string `json:"type"`
		Name      string `json:"name"`
		Value     string `json:"value"`
		Traceback string `json:"traceback"`
	}{"error", name, value, name + ": " + value + "\n"})
	return b
}

func truncate(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// tailWriter receives the kernel's stderr (which carries only fatal errors: user
// output is captured by the kernel), logs it and keeps its last max bytes.
type tailWriter struct {
	log *slog.Logger
	max int
	mu  sync.Mutex
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.log.Warn("kernel stderr", "text", strings.TrimRight(string(p), "\n"))
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.max:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(string(w.buf))
}
