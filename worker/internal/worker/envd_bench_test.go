package worker_test

import (
	"bytes"
	"io"
	"testing"

	"fleetbox.dev/schema"
)

// BenchmarkProcessTrue is commands.run('true') through the bus: start, read the stream to its end.
func BenchmarkProcessTrue(b *testing.B) {
	h := newHarness(b)
	h.startWorker(b)
	id := h.createRunning(b)
	req := schema.ProcessStartRequest{Process: schema.ProcessConfig{Cmd: "true"}}
	for b.Loop() {
		res := mustStart(b, h.bus.NC, id, req).wait(b.Context())
		if res.err != nil || res.end() == nil {
			b.Fatalf("%+v", res)
		}
	}
}

// BenchmarkFileWriteRead1KiB is files.write + files.read of 1 KiB through the bus.
func BenchmarkFileWriteRead1KiB(b *testing.B) {
	h := newHarness(b)
	h.startWorker(b)
	id := h.createRunning(b)
	data := bytes.Repeat([]byte("x"), 1024)
	for b.Loop() {
		if _, err := writeFile(b, h.bus.NC, id, "bench.txt", bytes.NewReader(data), nil); err != nil {
			b.Fatal(err)
		}
		got, err := readFile(b, h.bus.NC, id, "bench.txt")
		if err != nil || len(got) != len(data) {
			b.Fatalf("read %d bytes: %v", len(got), err)
		}
	}
}

const bigFile = 50 << 20

// BenchmarkUpload50MB is the throughput of one 50 MB upload through the bus.
func BenchmarkUpload50MB(b *testing.B) {
	h := newHarness(b)
	h.startWorker(b)
	id := h.createRunning(b)
	b.SetBytes(bigFile)
	for b.Loop() {
		if _, err := writeFile(b, h.bus.NC, id, "big.bin", io.LimitReader(newPseudoRandom(2), bigFile), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDownload50MB is the throughput of one 50 MB download through the bus.
func BenchmarkDownload50MB(b *testing.B) {
	h := newHarness(b)
	h.startWorker(b)
	id := h.createRunning(b)
	if _, err := writeFile(b, h.bus.NC, id, "big.bin", io.LimitReader(newPseudoRandom(3), bigFile), nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(bigFile)
	for b.Loop() {
		if _, err := readFileTo(b, h.bus.NC, id, "big.bin", io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
