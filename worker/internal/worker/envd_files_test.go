package worker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/worker"
)

// writeFile uploads data as the apiserver does: begin (the worker subscribes), write the stream, commit.
func writeFile(tb testing.TB, nc *nats.Conn, id, path string, data io.Reader, md map[string]string) (schema.EntryInfo, error) {
	tb.Helper()
	stream := schema.NewToken(8)
	if _, err := op[schema.Empty](tb, nc, id, schema.OpFileWriteBegin, schema.FileWriteRequest{Stream: stream, Path: path, Metadata: md}); err != nil {
		return schema.EntryInfo{}, err
	}
	w, err := bus.NewStreamWriter(nc, id, stream)
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, bus.DefaultChunkSize)
	if _, err := io.CopyBuffer(w, onlyReader{data}, buf); err != nil {
		_ = w.Close(err)
	} else if err := w.Close(nil); err != nil {
		tb.Fatal(err)
	}
	return op[schema.EntryInfo](tb, nc, id, schema.OpFileWriteCommit, schema.FileWriteCommit{Stream: stream})
}

type onlyReader struct{ io.Reader }

// readFile downloads a file through the bus into w and returns its entry.
func readFileTo(tb testing.TB, nc *nats.Conn, id, path string, w io.Writer) (schema.EntryInfo, error) {
	tb.Helper()
	stream, r := openStream(tb, nc, id)
	defer r.Close()
	e, err := op[schema.EntryInfo](tb, nc, id, schema.OpFileRead, schema.FileReadRequest{Stream: stream, Path: path})
	if err != nil {
		return e, err
	}
	var n int64
	for {
		chunk, err := r.Next(tb.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return e, err
		}
		n += int64(len(chunk))
		if _, err := w.Write(chunk); err != nil {
			return e, err
		}
	}
	if n != e.Size {
		return e, fmt.Errorf("read %d bytes, entry says %d", n, e.Size)
	}
	return e, nil
}

func readFile(tb testing.TB, nc *nats.Conn, id, path string) ([]byte, error) {
	var buf bytes.Buffer
	_, err := readFileTo(tb, nc, id, path, &buf)
	return buf.Bytes(), err
}

func TestFiles(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC

	e, err := writeFile(t, nc, id, "dir/new/a.txt", strings.NewReader("hello"), map[string]string{"Purpose": "test"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Path != "/home/user/dir/new/a.txt" || e.Type != schema.FileTypeFile || e.Size != 5 || e.Mode != 0o644 || e.Metadata["purpose"] != "test" {
		t.Fatalf("written entry %+v", e)
	}
	if got, err := readFile(t, nc, id, "/home/user/dir/new/a.txt"); err != nil || string(got) != "hello" {
		t.Fatalf("read %q %v", got, err)
	}
	if st, err := op[schema.EntryInfo](t, nc, id, schema.OpFsStat, schema.FsRequest{Path: "dir/new/a.txt"}); err != nil || st.Metadata["purpose"] != "test" {
		t.Fatalf("stat metadata %+v %v", st, err)
	}
	if out := runSh(t, nc, id, "cat dir/new/a.txt; ls -a dir/new").stdout; out != "hello.\n..\na.txt\n" {
		t.Fatalf("seen from the sandbox: %q", out)
	}

	t.Run("rewrite keeps the mode", func(t *testing.T) {
		runSh(t, nc, id, "chmod 600 dir/new/a.txt")
		e, err := writeFile(t, nc, id, "dir/new/a.txt", strings.NewReader(""), nil)
		if err != nil || e.Size != 0 || e.Mode != 0o600 {
			t.Fatalf("rewrite: %+v %v", e, err)
		}
		if got, err := readFile(t, nc, id, "dir/new/a.txt"); err != nil || len(got) != 0 {
			t.Fatalf("read empty file: %q %v", got, err)
		}
	})
	t.Run("write through a symlink keeps the link", func(t *testing.T) {
		runSh(t, nc, id, "ln -s dir/new/a.txt alink")
		if _, err := writeFile(t, nc, id, "alink", strings.NewReader("via link"), nil); err != nil {
			t.Fatal(err)
		}
		if out := runSh(t, nc, id, "test -L alink && cat dir/new/a.txt").stdout; out != "via link" {
			t.Fatalf("after writing through the link: %q", out)
		}
	})
	t.Run("errors", func(t *testing.T) {
		runSh(t, nc, id, "mkdir -p adir && touch afile")
		tests := []struct {
			name, path string
			read       bool
			code       int
			msg        string
		}{
			{"write a directory", "adir", false, http.StatusBadRequest, "is a directory"},
			{"write beneath a file", "afile/x.txt", false, http.StatusInternalServerError, ""},
			{"read missing", "nope.txt", true, http.StatusNotFound, "path '/home/user/nope.txt' does not exist"},
			{"read a directory", "adir", true, http.StatusBadRequest, "is a directory"},
		}
		for _, tt := range tests {
			var err error
			if tt.read {
				_, err = readFile(t, nc, id, tt.path)
			} else {
				_, err = writeFile(t, nc, id, tt.path, strings.NewReader("x"), nil)
			}
			wantCode(t, err, tt.code, tt.msg)
		}
		_, err := op[schema.EntryInfo](t, nc, id, schema.OpFileWriteCommit, schema.FileWriteCommit{Stream: "never-begun"})
		wantCode(t, err, http.StatusNotFound, "")
	})
	t.Run("aborted upload leaves the old file", func(t *testing.T) {
		stream := schema.NewToken(8)
		if _, err := op[schema.Empty](t, nc, id, schema.OpFileWriteBegin, schema.FileWriteRequest{Stream: stream, Path: "afile"}); err != nil {
			t.Fatal(err)
		}
		w, _ := bus.NewStreamWriter(nc, id, stream)
		_, _ = w.Write([]byte("partial"))
		_ = w.Close(schema.Errorf(http.StatusBadRequest, "client went away"))
		_, err := op[schema.EntryInfo](t, nc, id, schema.OpFileWriteCommit, schema.FileWriteCommit{Stream: stream})
		wantCode(t, err, http.StatusBadRequest, "client went away")
		if out := runSh(t, nc, id, "wc -c < afile; ls -a | grep -c upload").stdout; out != "0\n0\n" {
			t.Fatalf("after the aborted upload: %q", out)
		}
	})
}

// An upload nobody commits is removed after the commit timeout.
func TestUploadNeverCommitted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t, func(c *worker.Config) { c.UploadCommitTimeout = 300 * time.Millisecond })
	id := h.createRunning(t)
	nc := h.bus.NC
	stream := schema.NewToken(8)
	if _, err := op[schema.Empty](t, nc, id, schema.OpFileWriteBegin, schema.FileWriteRequest{Stream: stream, Path: "u/x.bin"}); err != nil {
		t.Fatal(err)
	}
	w, _ := bus.NewStreamWriter(nc, id, stream)
	if _, err := w.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(nil); err != nil {
		t.Fatal(err)
	}
	// The upload's temporary file appears (it is created by the receiving goroutine), then goes.
	listing := func(wantEmpty bool) func() error {
		return func() error {
			entries, err := op[[]schema.EntryInfo](t, nc, id, schema.OpFsListDir, schema.FsListRequest{Path: "u"})
			if err != nil || (len(entries) == 0) != wantEmpty {
				return fmt.Errorf("u holds %+v (%v), want empty=%v", entries, err, wantEmpty)
			}
			return nil
		}
	}
	bustest.Eventually(t, 10*time.Second, 5*time.Millisecond, listing(false))
	bustest.Eventually(t, 10*time.Second, 10*time.Millisecond, listing(true))
	_, err := op[schema.EntryInfo](t, nc, id, schema.OpFileWriteCommit, schema.FileWriteCommit{Stream: stream})
	wantCode(t, err, http.StatusNotFound, "")
}

// A 50 MB file goes up and comes back intact, in order, through the bus; neither side holds it whole.
// Not parallel: the heap it measures is the whole test binary's.
func TestLargeFile(t *testing.T) {
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC
	const size = 50 << 20

	var peak atomic.Uint64
	stop := sampleHeap(&peak)
	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)

	src := sha256.New()
	e, err := writeFile(t, nc, id, "big.bin", io.TeeReader(io.LimitReader(newPseudoRandom(1), size), src), nil)
	if err != nil || e.Size != size {
		t.Fatalf("upload: %+v %v", e, err)
	}
	dst := sha256.New()
	if _, err := readFileTo(t, nc, id, "big.bin", dst); err != nil {
		t.Fatal(err)
	}
	stop()
	if !bytes.Equal(src.Sum(nil), dst.Sum(nil)) {
		t.Fatal("downloaded bytes differ from the uploaded ones")
	}
	grew := int64(peak.Load()) - int64(base.HeapAlloc)
	t.Logf("peak heap growth while moving %d MB: %d MB", size>>20, grew>>20)
	if grew > size/2 {
		t.Fatalf("heap grew by %d MB while moving %d MB: the file was held in memory", grew>>20, size>>20)
	}
}

// sampleHeap records the peak heap in use until the returned stop is called.
func sampleHeap(peak *atomic.Uint64) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for ctx.Err() == nil {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() { cancel(); <-done }
}

// pseudoRandom is an endless, reproducible byte source.
type pseudoRandom struct{ r *rand.ChaCha8 }

func newPseudoRandom(seed byte) *pseudoRandom {
	var s [32]byte
	s[0] = seed
	return &pseudoRandom{rand.NewChaCha8(s)}
}

func (p *pseudoRandom) Read(b []byte) (int, error) { return p.r.Read(b) }
