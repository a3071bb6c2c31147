package agent

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	frames := []struct {
		typ     byte
		payload []byte
	}{{frameStdout, []byte("hello")}, {frameStdinEOF, nil}, {frameStdin, bytes.Repeat([]byte{7}, MaxFrame)}, {frameSignal, []byte("INT")}}
	for _, f := range frames {
		if err := writeFrame(&b, f.typ, f.payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeFrame(&b, frameStdout, make([]byte, MaxFrame+1)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("oversized write: %v", err)
	}
	var buf []byte
	for _, f := range frames {
		typ, payload, nb, err := readFrame(&b, buf)
		buf = nb
		if err != nil || typ != f.typ || !bytes.Equal(payload, f.payload) {
			t.Fatalf("frame %q: %q (%d bytes), %v", f.typ, typ, len(payload), err)
		}
	}
	if _, _, _, err := readFrame(&b, buf); !errors.Is(err, io.EOF) {
		t.Fatalf("at the end: %v", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	t.Parallel()
	long := []byte{frameStdout, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(long[1:], MaxFrame+1)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"short header", []byte{frameStdout, 0}, io.ErrUnexpectedEOF},
		{"short payload", []byte{frameStdout, 0, 0, 0, 5, 'a'}, io.ErrUnexpectedEOF},
		{"too long", long, ErrProtocol},
	}
	for _, tt := range tests {
		if _, _, _, err := readFrame(bytes.NewReader(tt.in), nil); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// FuzzReadFrame: any input decodes to frames no longer than MaxFrame, or an error; never a panic, and a
// frame re-encodes to the bytes it came from.
func FuzzReadFrame(f *testing.F) {
	var seed bytes.Buffer
	_ = writeFrame(&seed, frameStdout, []byte("out"))
	_ = writeFrame(&seed, frameExit, []byte(`{"code":0}`))
	f.Add(seed.Bytes())
	f.Add([]byte{frameStdin, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{frameWindow, 0, 0, 0, 4, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var buf []byte
		consumed := 0
		for {
			typ, payload, nb, err := readFrame(r, buf)
			buf = nb
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(payload) > MaxFrame || cap(buf) > MaxFrame {
				t.Fatalf("payload %d, buffer %d bytes", len(payload), cap(buf))
			}
			var re bytes.Buffer
			if err := writeFrame(&re, typ, payload); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(re.Bytes(), in[consumed:consumed+re.Len()]) {
				t.Fatalf("re-encoded frame differs")
			}
			consumed += re.Len()
		}
	})
}

func TestReadLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		max     int
		want    string
		wantErr error
	}{
		{"abc\nrest", 3, "abc", nil},
		{"abcd\n", 3, "", ErrProtocol},
		{strings.Repeat("x", 10000) + "\n", 10000, strings.Repeat("x", 10000), nil},
		{strings.Repeat("x", 10001) + "\n", 10000, "", ErrProtocol},
		{strings.Repeat("x", 100000), 10000, "", ErrProtocol},
		{"abc", 10, "", io.ErrUnexpectedEOF},
		{"", 10, "", io.EOF},
	}
	for _, tt := range tests {
		got, err := readLine(bufio.NewReader(strings.NewReader(tt.in)), tt.max)
		if string(got) != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("readLine(%.20q, %d) = %.20q, %v; want %.20q, %v", tt.in, tt.max, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSignalNames(t *testing.T) {
	t.Parallel()
	for name, sig := range signals {
		if got := SignalName(sig); got != name {
			t.Errorf("SignalName(%d) = %s, want %s", sig, got, name)
		}
		for _, n := range []string{name, "SIG" + name} {
			if got, err := ParseSignal(n); err != nil || got != sig {
				t.Errorf("ParseSignal(%s) = %d, %v", n, got, err)
			}
		}
	}
	if got, err := ParseSignal("SIG40"); err != nil || got != 40 {
		t.Errorf("SIG40: %d, %v", got, err)
	}
	for _, bad := range []string{"", "40", "SIG0", "SIG200", "NOPE"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) succeeded", bad)
		}
	}
	if SignalName(syscall.Signal(40)) != "SIG40" {
		t.Errorf("unnamed signal: %s", SignalName(40))
	}
	if got := (Status{Code: -1, Signal: "INT"}).ExitCode(); got != 130 {
		t.Errorf("exit code of INT: %d", got)
	}
}

func TestEnvEncoding(t *testing.T) {
	t.Parallel()
	env := []string{"A=1", "B=with spaces\nand lines", "LD_PRELOAD=/x.so", "EMPTY="}
	got, err := DecodeEnv(EncodeEnv(env))
	if err != nil || !slices.Equal(got, env) {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	for _, bad := range []string{"!!", "bm90IGpzb24="} {
		if _, err := DecodeEnv(bad); err == nil {
			t.Errorf("DecodeEnv(%q) succeeded", bad)
		}
	}
}
