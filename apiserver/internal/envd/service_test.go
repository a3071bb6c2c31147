package envd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"

	"fleetbox.dev/apiserver/internal/envd/proto/filesystem"
	"fleetbox.dev/apiserver/internal/envd/proto/filesystem/filesystemconnect"
	"fleetbox.dev/apiserver/internal/envd/proto/process"
	"fleetbox.dev/apiserver/internal/envd/proto/process/processconnect"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
)

// These tests run the envd surface against a real NATS server and a scripted worker that speaks the
// schema's envd operations, so the relay (streams, errors, uploads, downloads) is exercised without the
// real worker.

type fakeWorker struct {
	mu       sync.Mutex
	starts   []schema.ProcessStartRequest
	uploads  map[string]chan uploadResult
	received map[string]string // path -> sha256 of the uploaded bytes
}

type uploadResult struct {
	entry schema.EntryInfo
	err   error
}

// fileContent is what OpFileRead serves for any path but /nope.
var fileContent = bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB

type testEnv struct {
	url    string
	id     string
	worker *fakeWorker
	client processconnect.ProcessClient
	fs     filesystemconnect.FilesystemClient
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	ns := bustest.RunJetStream(t)
	b := bustest.Open(t, ns, bus.Config{})
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	rec := schema.Record{ID: schema.NewSandboxID(), State: schema.StateRunning, AccessToken: testToken}
	h := Routes(Deps{Sandboxes: lifecycle.New(b, log), Log: log, Record: func(context.Context) schema.Record { return rec }})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	wnc := bustest.Connect(t, ns)
	fw := &fakeWorker{uploads: map[string]chan uploadResult{}, received: map[string]string{}}
	mux := bus.NewMux(30*time.Second, log)
	fw.register(mux, wnc)
	sub, err := mux.Subscribe(wnc, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	auth := connect.WithInterceptors(withToken{})
	return &testEnv{
		url: srv.URL, id: rec.ID, worker: fw,
		client: processconnect.NewProcessClient(srv.Client(), srv.URL, connect.WithProtoJSON(), auth),
		fs:     filesystemconnect.NewFilesystemClient(srv.Client(), srv.URL, connect.WithProtoJSON(), auth),
	}
}

// withToken adds the access token to every call.
type withToken struct{}

func (withToken) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("X-Access-Token", testToken)
		return next(ctx, req)
	}
}

func (withToken) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		c := next(ctx, spec)
		c.RequestHeader().Set("X-Access-Token", testToken)
		return c
	}
}

func (withToken) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func (fw *fakeWorker) register(m *bus.Mux, natsConn *nats.Conn) {
	bus.Handle(m, schema.OpProcessStart, func(ctx context.Context, id string, req schema.ProcessStartRequest) (schema.ProcessStartReply, error) {
		fw.mu.Lock()
		fw.starts = append(fw.starts, req)
		fw.mu.Unlock()
		if req.Process.Cwd == "/nope" {
			return schema.ProcessStartReply{}, schema.Errorf(http.StatusBadRequest, "cwd '/nope' does not exist")
		}
		go fw.runProcess(natsConn, id, req)
		return schema.ProcessStartReply{PID: 42}, nil
	})
	bus.Handle(m, schema.OpProcessList, func(ctx context.Context, id string, _ schema.Empty) ([]schema.ProcessInfo, error) {
		return []schema.ProcessInfo{{Config: schema.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l"}, Cwd: "/home/user"}, PID: 42, Tag: "t"}}, nil
	})
	bus.Handle(m, schema.OpProcessSignal, func(ctx context.Context, id string, req schema.ProcessSignalRequest) (schema.Empty, error) {
		if req.Process.PID != 42 || req.Signal != 9 {
			return schema.Empty{}, schema.Errorf(http.StatusNotFound, "process with pid %d not found", req.Process.PID)
		}
		return schema.Empty{}, nil
	})
	bus.Handle(m, schema.OpProcessInput, func(ctx context.Context, id string, req schema.ProcessInputRequest) (schema.Empty, error) {
		if string(req.Stdin) != "hi\n" {
			return schema.Empty{}, schema.Errorf(http.StatusBadRequest, "stdin %q", req.Stdin)
		}
		return schema.Empty{}, nil
	})
	bus.Handle(m, schema.OpEnvs, func(ctx context.Context, id string, _ schema.Empty) (map[string]string, error) {
		return map[string]string{"A": "1"}, nil
	})
	bus.Handle(m, schema.OpFsStat, func(ctx context.Context, id string, req schema.FsRequest) (schema.EntryInfo, error) {
		if req.Path == "/nope" {
			return schema.EntryInfo{}, schema.Errorf(http.StatusNotFound, "path '/nope' does not exist")
		}
		return testEntry(req.Path), nil
	})
	bus.Handle(m, schema.OpFsWatch, func(ctx context.Context, id string, req schema.FsWatchRequest) (schema.Empty, error) {
		go func() {
			w, err := bus.NewStreamWriter(natsConn, id, req.Stream)
			if err != nil {
				return
			}
			e := testEntry(req.Path + "/new.txt")
			line, _ := json.Marshal(map[string]any{"filesystem": schema.FsEvent{Name: "new.txt", Type: schema.EventCreate, Entry: &e}})
			_, _ = w.Write([]byte(`{"start":{}}` + "\n" + string(line) + "\n"))
			_ = w.Close(nil)
		}()
		return schema.Empty{}, nil
	})
	bus.Handle(m, schema.OpFileRead, func(ctx context.Context, id string, req schema.FileReadRequest) (schema.EntryInfo, error) {
		if req.Path == "/nope" {
			return schema.EntryInfo{}, schema.Errorf(http.StatusNotFound, "path '/nope' does not exist")
		}
		go func() {
			w, err := bus.NewStreamWriter(natsConn, id, req.Stream)
			if err != nil {
				return
			}
			_, err = w.Write(fileContent)
			_ = w.Close(err)
		}()
		e := testEntry(req.Path)
		e.Size = int64(len(fileContent))
		return e, nil
	})
	bus.Handle(m, schema.OpFileWriteBegin, func(ctx context.Context, id string, req schema.FileWriteRequest) (schema.Empty, error) {
		rd, err := bus.OpenStream(natsConn, id, req.Stream, 10*time.Second)
		if err != nil {
			return schema.Empty{}, err
		}
		done := make(chan uploadResult, 1)
		fw.mu.Lock()
		fw.uploads[req.Stream] = done
		fw.mu.Unlock()
		go func() {
			defer rd.Close()
			h := sha256.New()
			var n int64
			for {
				b, err := rd.Next(context.Background())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					done <- uploadResult{err: err}
					return
				}
				n += int64(len(b))
				h.Write(b)
			}
			e := testEntry("/home/user/" + strings.TrimPrefix(req.Path, "/home/user/"))
			e.Size = n
			e.Metadata = req.Metadata
			fw.mu.Lock()
			fw.received[e.Path] = fmt.Sprintf("%x", h.Sum(nil))
			fw.mu.Unlock()
			done <- uploadResult{entry: e}
		}()
		return schema.Empty{}, nil
	})
	bus.Handle(m, schema.OpFileWriteCommit, func(ctx context.Context, id string, req schema.FileWriteCommit) (schema.EntryInfo, error) {
		fw.mu.Lock()
		done := fw.uploads[req.Stream]
		fw.mu.Unlock()
		if done == nil {
			return schema.EntryInfo{}, schema.Errorf(http.StatusNotFound, "no upload %s", req.Stream)
		}
		r := <-done
		return r.entry, r.err
	})
}

func testEntry(p string) schema.EntryInfo {
	return schema.EntryInfo{
		Name: p[strings.LastIndexByte(p, '/')+1:], Type: schema.FileTypeFile, Path: p, Size: 5, Mode: 0o644,
		Permissions: "-rw-r--r--", Owner: "user", Group: "user", ModifiedTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)),
	}
}

// runProcess streams a scripted process: cmd "big" writes Args[0] stdout events of 32 KiB, "sleep"
// waits for its lifetime and ends with envd's deadline error, anything else prints its argv and exits 3.
func (fw *fakeWorker) runProcess(nc *nats.Conn, id string, req schema.ProcessStartRequest) {
	w, err := bus.NewStreamWriter(nc, id, req.Stream)
	if err != nil {
		return
	}
	line := func(v any) {
		b, _ := json.Marshal(v)
		_, _ = w.Write(append(b, '\n'))
	}
	line(map[string]any{"start": map[string]any{"pid": 42}})
	switch req.Process.Cmd {
	case "big":
		n, _ := strconv.Atoi(req.Process.Args[0])
		chunk := bytes.Repeat([]byte("y"), 32<<10)
		for i := 0; i < n; i++ {
			chunk[0] = byte('a' + i%26)
			line(map[string]any{"data": map[string]any{"stdout": chunk}})
		}
	case "sleep":
		time.Sleep(req.Timeout)
		_ = w.Close(schema.Errorf(http.StatusGatewayTimeout, "process timed out"))
		return
	default:
		line(map[string]any{"data": map[string]any{"stdout": []byte(strings.Join(req.Process.Args, " ") + "\n")}})
		line(map[string]any{"keepalive": map[string]any{}})
		line(map[string]any{"data": map[string]any{"stderr": []byte("oops\n")}})
		line(map[string]any{"end": map[string]any{"exitCode": 3, "exited": true, "status": "exit status 3", "error": "exit status 3"}})
	}
	_ = w.Close(nil)
}

func TestStartRelaysEventsInOrder(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	stdin := false
	req := connect.NewRequest(&process.StartRequest{Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", "echo hi"}, Envs: map[string]string{"A": "1"}}, Stdin: &stdin})
	req.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("root:")))
	stream, err := env.client.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	var stdout, stderr string
	var end *process.ProcessEvent_EndEvent
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		switch {
		case ev.GetStart() != nil:
			kinds = append(kinds, fmt.Sprintf("start:%d", ev.GetStart().GetPid()))
		case ev.GetData() != nil:
			kinds = append(kinds, "data")
			stdout += string(ev.GetData().GetStdout())
			stderr += string(ev.GetData().GetStderr())
		case ev.GetKeepalive() != nil:
			kinds = append(kinds, "keepalive")
		case ev.GetEnd() != nil:
			kinds = append(kinds, "end")
			end = ev.GetEnd()
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(kinds, ","); got != "start:42,data,keepalive,data,end" {
		t.Fatalf("events %s", got)
	}
	if stdout != "-l -c echo hi\n" || stderr != "oops\n" || end.GetExitCode() != 3 || end.GetError() != "exit status 3" {
		t.Fatalf("stdout %q stderr %q end %v", stdout, stderr, end)
	}
	env.worker.mu.Lock()
	got := env.worker.starts[0]
	env.worker.mu.Unlock()
	if got.User != "root" || got.Stdin || got.Process.Envs["A"] != "1" || got.Timeout <= 3*time.Second || got.Timeout > 5*time.Second {
		t.Fatalf("worker got %+v", got)
	}
}

func TestStartLargeOutputComplete(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	events := 640 // 20 MiB
	if testing.Short() {
		events = 64
	}
	stream, err := env.client.Start(t.Context(), connect.NewRequest(&process.StartRequest{Process: &process.ProcessConfig{Cmd: "big", Args: []string{strconv.Itoa(events)}}}))
	if err != nil {
		t.Fatal(err)
	}
	h, want := sha256.New(), sha256.New()
	chunk := bytes.Repeat([]byte("y"), 32<<10)
	for i := 0; i < events; i++ {
		chunk[0] = byte('a' + i%26)
		want.Write(chunk)
	}
	n := 0
	for stream.Receive() {
		b := stream.Msg().GetEvent().GetData().GetStdout()
		n += len(b)
		h.Write(b)
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if n != events*32<<10 || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Fatalf("got %d bytes, digest mismatch=%v", n, !bytes.Equal(h.Sum(nil), want.Sum(nil)))
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	tests := []struct {
		name    string
		cfg     *process.ProcessConfig
		timeout time.Duration
		want    connect.Code
	}{
		{"missing cwd before the start event", &process.ProcessConfig{Cmd: "/bin/bash", Cwd: ptr("/nope")}, 5 * time.Second, connect.CodeInvalidArgument},
		{"lifetime over", &process.ProcessConfig{Cmd: "sleep"}, 300 * time.Millisecond, connect.CodeDeadlineExceeded},
		{"no command", &process.ProcessConfig{}, 5 * time.Second, connect.CodeInvalidArgument},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(t.Context(), tt.timeout)
		stream, err := env.client.Start(ctx, connect.NewRequest(&process.StartRequest{Process: tt.cfg}))
		if err == nil {
			for stream.Receive() {
			}
			err = stream.Err()
		}
		cancel()
		if connect.CodeOf(err) != tt.want {
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestStreamErrorInEndStream checks the wire form the SDKs depend on: a stream error is the end-stream
// envelope of an HTTP 200 response, never an HTTP error status.
func TestStreamErrorInEndStream(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	msg := []byte(`{"process":{"cmd":"/bin/bash","cwd":"/nope"},"stdin":false}`)
	body := append([]byte{0}, binary.BigEndian.AppendUint32(nil, uint32(len(msg)))...)
	body = append(body, msg...)
	req, _ := http.NewRequest("POST", env.url+"/process.Process/Start", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/connect+json")
	req.Header.Set("Connect-Protocol-Version", "1")
	req.Header.Set("X-Access-Token", testToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || len(out) < 5 || out[0] != 2 || !bytes.Contains(out, []byte(`"invalid_argument"`)) || !bytes.Contains(out, []byte("cwd '/nope' does not exist")) {
		t.Fatalf("status %d body %q", res.StatusCode, out)
	}
	if ce := res.Header.Get("Content-Encoding") + res.Header.Get("Connect-Content-Encoding"); ce != "" {
		t.Fatalf("compressed response: %q", ce)
	}
}

func TestUnaryProcessCalls(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	ctx := t.Context()
	list, err := env.client.List(ctx, connect.NewRequest(&process.ListRequest{}))
	if err != nil || len(list.Msg.GetProcesses()) != 1 || list.Msg.GetProcesses()[0].GetPid() != 42 || list.Msg.GetProcesses()[0].GetTag() != "t" || list.Msg.GetProcesses()[0].GetConfig().GetCwd() != "/home/user" {
		t.Fatalf("List = %v, %v", list, err)
	}
	pid := func(p uint32) *process.ProcessSelector {
		return &process.ProcessSelector{Selector: &process.ProcessSelector_Pid{Pid: p}}
	}
	if _, err := env.client.SendSignal(ctx, connect.NewRequest(&process.SendSignalRequest{Process: pid(42), Signal: process.Signal_SIGNAL_SIGKILL})); err != nil {
		t.Fatalf("SendSignal: %v", err)
	}
	_, err = env.client.SendSignal(ctx, connect.NewRequest(&process.SendSignalRequest{Process: pid(7), Signal: process.Signal_SIGNAL_SIGKILL}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("SendSignal unknown pid: %v, want not_found", err)
	}
	_, err = env.client.SendSignal(ctx, connect.NewRequest(&process.SendSignalRequest{Process: pid(42)}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("SendSignal without signal: %v, want invalid_argument", err)
	}
	in := &process.ProcessInput{Input: &process.ProcessInput_Stdin{Stdin: []byte("hi\n")}}
	if _, err := env.client.SendInput(ctx, connect.NewRequest(&process.SendInputRequest{Process: pid(42), Input: in})); err != nil {
		t.Fatalf("SendInput: %v", err)
	}
	_, err = env.client.SendInput(ctx, connect.NewRequest(&process.SendInputRequest{Process: &process.ProcessSelector{}, Input: in}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("SendInput without a selector: %v", err)
	}
	cs := env.client.StreamInput(ctx)
	for _, m := range []*process.StreamInputRequest{
		{Event: &process.StreamInputRequest_Start{Start: &process.StreamInputRequest_StartEvent{Process: pid(42)}}},
		{Event: &process.StreamInputRequest_Keepalive{Keepalive: &process.StreamInputRequest_KeepAlive{}}},
		{Event: &process.StreamInputRequest_Data{Data: &process.StreamInputRequest_DataEvent{Input: in}}},
	} {
		if err := cs.Send(m); err != nil {
			t.Fatalf("StreamInput send: %v", err)
		}
	}
	if _, err := cs.CloseAndReceive(); err != nil {
		t.Fatalf("StreamInput: %v", err)
	}
	// Update is not served by this worker: its "unknown operation" is unimplemented.
	_, err = env.client.Update(ctx, connect.NewRequest(&process.UpdateRequest{Process: pid(42)}))
	if connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Fatalf("Update: %v, want unimplemented", err)
	}
}

func TestFilesystemCalls(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	ctx := t.Context()
	st, err := env.fs.Stat(ctx, connect.NewRequest(&filesystem.StatRequest{Path: "/home/user/a.txt"}))
	if err != nil {
		t.Fatal(err)
	}
	e := st.Msg.GetEntry()
	if e.GetName() != "a.txt" || e.GetType() != filesystem.FileType_FILE_TYPE_FILE || e.GetSize() != 5 || e.GetModifiedTime().AsTime().Unix() != time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC).Unix() {
		t.Fatalf("Stat = %v", e)
	}
	_, err = env.fs.Stat(ctx, connect.NewRequest(&filesystem.StatRequest{Path: "/nope"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("Stat missing: %v", err)
	}

	stream, err := env.fs.WatchDir(ctx, connect.NewRequest(&filesystem.WatchDirRequest{Path: "/home/user/d", IncludeEntry: true}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for stream.Receive() {
		m := stream.Msg()
		switch {
		case m.GetStart() != nil:
			got = append(got, "start")
		case m.GetFilesystem() != nil:
			f := m.GetFilesystem()
			got = append(got, fmt.Sprintf("%s:%s:%s", f.GetType(), f.GetName(), f.GetEntry().GetPath()))
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "start,EVENT_TYPE_CREATE:new.txt:/home/user/d/new.txt" {
		t.Fatalf("events %v", got)
	}
}

func TestAccessTokenRequired(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	c := processconnect.NewProcessClient(http.DefaultClient, env.url, connect.WithProtoJSON())
	_, err := c.List(t.Context(), connect.NewRequest(&process.ListRequest{}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("List without token: %v", err)
	}
	res, err := http.Get(env.url + "/envs")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	want := `{"code":401,"message":"unauthorized access, please provide a valid access token or method signing if supported"}`
	if res.StatusCode != 401 || string(body) != want {
		t.Fatalf("GET /envs without token: %d %s", res.StatusCode, body)
	}
	res, err = http.Get(env.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("GET /health: %d", res.StatusCode)
	}
}

func (env *testEnv) do(t *testing.T, method, path string, body io.Reader, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, env.url+path, body)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

func TestFilesHTTP(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	tok := map[string]string{"X-Access-Token": testToken}

	res, body := env.do(t, "GET", "/files?path=/home/user/data.bin", nil, map[string]string{"X-Access-Token": testToken, "Accept-Encoding": "gzip"})
	if res.StatusCode != 200 || !bytes.Equal(body, fileContent) || res.Header.Get("Content-Length") != fmt.Sprint(len(fileContent)) ||
		res.Header.Get("Content-Encoding") != "" || res.Header.Get("Content-Type") != "application/octet-stream" ||
		res.Header.Get("Content-Disposition") != "inline; filename=data.bin" {
		t.Fatalf("download: %d %v (%d bytes)", res.StatusCode, res.Header, len(body))
	}
	res, body = env.do(t, "GET", "/files?path=/home/user/page.html", nil, tok)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("content type by extension: %q", ct)
	}
	_ = body
	res, body = env.do(t, "GET", "/files?path=/nope", nil, tok)
	if res.StatusCode != 404 || string(body) != `{"code":404,"message":"path '/nope' does not exist"}` {
		t.Fatalf("missing file: %d %s", res.StatusCode, body)
	}
	res, _ = env.do(t, "GET", signedURL("/home/user/x", opRead, "", testToken, nil), nil, nil)
	if res.StatusCode != 200 {
		t.Fatalf("signed download: %d", res.StatusCode)
	}
	res, _ = env.do(t, "GET", "/files?path=/home/user/x", nil, map[string]string{"Accept-Encoding": "*;q=0"})
	if res.StatusCode != 401 {
		t.Fatalf("unsigned download without token: %d", res.StatusCode)
	}
	res, _ = env.do(t, "GET", "/files?path=/home/user/x", nil, map[string]string{"X-Access-Token": testToken, "Accept-Encoding": "*;q=0"})
	if res.StatusCode != 406 {
		t.Fatalf("no acceptable encoding: %d", res.StatusCode)
	}

	// Multipart upload of two files, with metadata.
	big := bytes.Repeat([]byte{1, 2, 3}, 3<<20)
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	w, _ := mw.CreateFormFile("file", "/home/user/dir/big.bin")
	_, _ = w.Write(big)
	w, _ = mw.CreateFormFile("file", "/home/user/small.txt")
	_, _ = w.Write([]byte("small"))
	_ = mw.Close()
	res, body = env.do(t, "POST", "/files", &mp, map[string]string{"X-Access-Token": testToken, "Content-Type": mw.FormDataContentType(), "X-Metadata-Kind": "test"})
	var entries []uploadEntry
	if err := json.Unmarshal(body, &entries); err != nil || res.StatusCode != 200 || len(entries) != 2 {
		t.Fatalf("upload: %d %s", res.StatusCode, body)
	}
	if entries[0].Path != "/home/user/dir/big.bin" || entries[0].Name != "big.bin" || entries[0].Type != "file" || entries[0].Metadata["kind"] != "test" || entries[1].Path != "/home/user/small.txt" {
		t.Fatalf("upload entries %+v", entries)
	}
	// The same bytes as octet-stream, gzip-encoded, through a signed URL.
	res, body = env.do(t, "POST", signedURL("raw.bin", opWrite, "", testToken, nil), bytes.NewReader(gzipped(t, big)),
		map[string]string{"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
	if res.StatusCode != 200 || !strings.Contains(string(body), `"path":"/home/user/raw.bin"`) {
		t.Fatalf("octet-stream upload: %d %s", res.StatusCode, body)
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(big))
	env.worker.mu.Lock()
	got := []string{env.worker.received["/home/user/dir/big.bin"], env.worker.received["/home/user/small.txt"], env.worker.received["/home/user/raw.bin"]}
	env.worker.mu.Unlock()
	if got[0] != sum || got[1] != fmt.Sprintf("%x", sha256.Sum256([]byte("small"))) || got[2] != sum {
		t.Fatalf("worker received digests %v", got)
	}
	// Two parts for one path: 400 after the first is written.
	mp.Reset()
	mw = multipart.NewWriter(&mp)
	for i := 0; i < 2; i++ {
		w, _ = mw.CreateFormFile("file", "/home/user/twice.txt")
		_, _ = w.Write([]byte("x"))
	}
	_ = mw.Close()
	res, body = env.do(t, "POST", "/files", &mp, map[string]string{"X-Access-Token": testToken, "Content-Type": mw.FormDataContentType()})
	if res.StatusCode != 400 || !strings.Contains(string(body), "same path") {
		t.Fatalf("same path twice: %d %s", res.StatusCode, body)
	}
	res, body = env.do(t, "GET", "/envs", nil, tok)
	if res.StatusCode != 200 || string(body) != `{"A":"1"}` {
		t.Fatalf("envs: %d %s", res.StatusCode, body)
	}
	res, body = env.do(t, "GET", "/unknown", nil, tok)
	if res.StatusCode != 404 || strings.HasPrefix(string(body), "{") {
		t.Fatalf("unknown path: %d %s", res.StatusCode, body)
	}
}

func ptr[T any](v T) *T { return &v }
