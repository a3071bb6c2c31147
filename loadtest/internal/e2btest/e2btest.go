// Package e2btest is a tiny in-process fake of an E2B-compatible deployment for the load tester's tests:
// create, kill and list on the control plane; /execute (NDJSON) and process.Process/Start (Connect
// envelopes) on the data plane, routed by the E2b-Sandbox-Id header. Knobs inject latency and failures.
package e2btest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Key is the API key the fake accepts.
const Key = "e2b_0123456789abcdef"

// Server is the fake. Set its knobs before the first request.
type Server struct {
	*httptest.Server
	CreateDelay   time.Duration
	FailEvery     int // every FailEvery-th create answers 500 (0 = never)
	CodeError     bool
	CommandExit   int
	NoEndOfExec   bool
	Creates       atomic.Int64
	Kills         atomic.Int64
	mu            sync.Mutex
	live          map[string]map[string]string // id → metadata
	seq           atomic.Int64
	MaxConcurrent atomic.Int64
	cur           atomic.Int64
}

// New starts a fake on a loopback port; Close stops it.
func New() *Server {
	s := &Server{live: map[string]map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Live is the number of sandboxes created and not killed.
func (s *Server) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if id := r.Header.Get("E2b-Sandbox-Id"); id != "" {
		s.mu.Lock()
		_, ok := s.live[id]
		s.mu.Unlock()
		if !ok {
			jsonError(w, http.StatusBadGateway, "The sandbox was not found")
			return
		}
		if r.Header.Get("X-Access-Token") != "tok-"+id {
			jsonError(w, http.StatusUnauthorized, "bad access token")
			return
		}
		switch {
		case r.URL.Path == "/execute" && r.Header.Get("E2b-Sandbox-Port") == "49999":
			s.execute(w, r)
		case r.URL.Path == "/process.Process/Start" && r.Header.Get("E2b-Sandbox-Port") == "49983":
			s.start(w, r)
		default:
			http.NotFound(w, r)
		}
		return
	}
	if r.Header.Get("X-Api-Key") != Key {
		jsonError(w, http.StatusUnauthorized, "bad key")
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/sandboxes":
		s.create(w, r)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/sandboxes/"):
		id := strings.TrimPrefix(r.URL.Path, "/sandboxes/")
		s.mu.Lock()
		_, ok := s.live[id]
		delete(s.live, id)
		s.mu.Unlock()
		if !ok {
			jsonError(w, http.StatusNotFound, "not found")
			return
		}
		s.Kills.Add(1)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && r.URL.Path == "/v2/sandboxes":
		s.list(w, r)
	default:
		jsonError(w, http.StatusNotFound, "no route")
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	c := s.cur.Add(1)
	defer s.cur.Add(-1)
	for {
		m := s.MaxConcurrent.Load()
		if c <= m || s.MaxConcurrent.CompareAndSwap(m, c) {
			break
		}
	}
	var body struct {
		TemplateID string            `json:"templateID"`
		Secure     bool              `json:"secure"`
		Metadata   map[string]string `json:"metadata"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.TemplateID == "" || !body.Secure {
		jsonError(w, http.StatusBadRequest, "bad body")
		return
	}
	n := s.seq.Add(1)
	if s.FailEvery > 0 && n%int64(s.FailEvery) == 0 {
		jsonError(w, http.StatusInternalServerError, "injected failure")
		return
	}
	time.Sleep(s.CreateDelay)
	id := fmt.Sprintf("sbx%017d", n)
	s.mu.Lock()
	s.live[id] = body.Metadata
	s.mu.Unlock()
	s.Creates.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"sandboxID": id, "templateID": body.TemplateID, "clientID": "x",
		"envdVersion": "0.6.13", "envdAccessToken": "tok-" + id, "trafficAccessToken": nil, "domain": nil})
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	want := r.URL.Query().Get("metadata") // k=v
	k, v, _ := strings.Cut(want, "=")
	var ids []string
	s.mu.Lock()
	for id, md := range s.live {
		if want == "" || md[k] == v {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	slices.Sort(ids)
	// Pages of 100 with an offset token.
	off := 0
	fmt.Sscan(r.URL.Query().Get("nextToken"), &off)
	end := min(off+100, len(ids))
	if end < len(ids) {
		w.Header().Set("X-Next-Token", fmt.Sprint(end))
	}
	out := []map[string]any{}
	for _, id := range ids[off:end] {
		out = append(out, map[string]any{"sandboxID": id, "templateID": "base", "clientID": "x", "state": "running"})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) execute(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Code string `json:"code"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	fl, _ := w.(http.Flusher)
	line := func(v string) {
		_, _ = io.WriteString(w, v+"\n")
		if fl != nil {
			fl.Flush()
		}
	}
	line(`{"type":"number_of_executions","execution_count":1}`)
	if s.CodeError {
		line(`{"type":"error","name":"NameError","value":"name 'x' is not defined","traceback":""}`)
	} else {
		line(`{"type":"result","text":"2","is_main_result":true,"extra":{}}`)
	}
	if !s.NoEndOfExec {
		line(`{"type": "end_of_execution"}`)
	}
}

func envelope(flags byte, v any) []byte {
	b, _ := json.Marshal(v)
	out := make([]byte, 5+len(b))
	out[0] = flags
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	copy(out[5:], b)
	return out
}

func (s *Server) start(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "application/connect+json" {
		http.Error(w, "want connect+json", http.StatusUnsupportedMediaType)
		return
	}
	var hdr [5]byte
	if _, err := io.ReadFull(r.Body, hdr[:]); err != nil || hdr[0] != 0 {
		http.Error(w, "bad envelope", http.StatusBadRequest)
		return
	}
	msg := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
	if _, err := io.ReadFull(r.Body, msg); err != nil {
		http.Error(w, "short envelope", http.StatusBadRequest)
		return
	}
	var req struct {
		Process struct {
			Cmd  string   `json:"cmd"`
			Args []string `json:"args"`
		} `json:"process"`
	}
	if err := json.Unmarshal(msg, &req); err != nil || req.Process.Cmd != "/bin/bash" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/connect+json")
	_, _ = w.Write(envelope(0, map[string]any{"event": map[string]any{"start": map[string]any{"pid": 42}}}))
	_, _ = w.Write(envelope(0, map[string]any{"event": map[string]any{"data": map[string]any{"stdout": []byte("ok\n")}}}))
	end := map[string]any{"exited": true, "status": "exit status 0"}
	if s.CommandExit != 0 {
		end = map[string]any{"exitCode": s.CommandExit, "exited": true, "status": "exit status 1", "error": "exit status 1"}
	}
	_, _ = w.Write(envelope(0, map[string]any{"event": map[string]any{"end": end}}))
	_, _ = w.Write(envelope(2, map[string]any{}))
}
