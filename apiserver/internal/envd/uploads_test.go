package envd

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"reflect"
	"testing"

	"fleetbox.dev/schema"
)

type testPart struct {
	field, filename, body string
}

// multipartBody encodes parts as the SDKs do (FormData / httpx): field "file", filename = destination.
func multipartBody(t *testing.T, parts []testPart) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.field, p.filename))
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(w, p.body)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), buf.Bytes()
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

type gotFile struct{ Path, Body string }

// readAll drains an uploadReader as the upload handler does, returning the files or the first error.
func readAll(u *uploadReader) ([]gotFile, error) {
	var out []gotFile
	for {
		f, err := u.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		b, err := io.ReadAll(f.Body)
		if err != nil {
			return out, err
		}
		out = append(out, gotFile{f.Path, string(b)})
	}
}

func TestUploadReader(t *testing.T) {
	t.Parallel()
	mp := func(parts ...testPart) func(t *testing.T) (string, []byte) {
		return func(t *testing.T) (string, []byte) { return multipartBody(t, parts) }
	}
	raw := func(ct, body string) func(t *testing.T) (string, []byte) {
		return func(*testing.T) (string, []byte) { return ct, []byte(body) }
	}
	tests := []struct {
		name     string
		body     func(t *testing.T) (contentType string, body []byte)
		query    string
		gzip     bool
		encoding string // Content-Encoding when not gzip
		want     []gotFile
		wantCode int // error after want's files
	}{
		{
			name: "one multipart file, path from the filename (directories kept)",
			body: mp(testPart{"file", "/home/user/dir/a.txt", "hello"}),
			want: []gotFile{{"/home/user/dir/a.txt", "hello"}},
		},
		{
			name:  "query path wins for a single file",
			body:  mp(testPart{"file", "ignored.txt", "hello"}),
			query: "path=/tmp/b.txt",
			want:  []gotFile{{"/tmp/b.txt", "hello"}},
		},
		{
			name: "several files in order, other fields ignored",
			body: mp(testPart{"file", "/a/1", "one"}, testPart{"note", "x", "skip me"}, testPart{"file", "rel/2", "two"}),
			want: []gotFile{{"/a/1", "one"}, {"rel/2", "two"}},
		},
		{
			name:     "two parts for the same path: the first is read, then 400",
			body:     mp(testPart{"file", "/a/1", "one"}, testPart{"file", "/a/./1", "two"}),
			want:     []gotFile{{"/a/1", "one"}},
			wantCode: 400,
		},
		{
			name:     "query path with two parts is the same path twice",
			body:     mp(testPart{"file", "/a/1", "one"}, testPart{"file", "/a/2", "two"}),
			query:    "path=/x",
			want:     []gotFile{{"/x", "one"}},
			wantCode: 400,
		},
		{
			name:     "part without a path",
			body:     mp(testPart{"file", "", "one"}),
			wantCode: 400,
		},
		{
			name: "gzip multipart",
			body: mp(testPart{"file", "/z", "zipped"}),
			gzip: true,
			want: []gotFile{{"/z", "zipped"}},
		},
		{
			name:  "octet-stream",
			body:  raw("application/octet-stream", "raw bytes"),
			query: "path=/home/user/raw.bin",
			want:  []gotFile{{"/home/user/raw.bin", "raw bytes"}},
		},
		{
			name:  "gzip octet-stream",
			body:  raw("application/octet-stream", "squeezed"),
			query: "path=c.txt",
			gzip:  true,
			want:  []gotFile{{"c.txt", "squeezed"}},
		},
		{
			name:     "octet-stream without path",
			body:     raw("application/octet-stream", "x"),
			wantCode: 400,
		},
		{
			name:     "unsupported content type",
			body:     raw("text/plain", "x"),
			query:    "path=/a",
			wantCode: 400,
		},
		{
			name:     "unsupported content encoding",
			body:     raw("application/octet-stream", "x"),
			query:    "path=/a",
			encoding: "br",
			wantCode: 400,
		},
		{
			name: "truncated multipart",
			body: func(t *testing.T) (string, []byte) {
				ct, b := multipartBody(t, []testPart{{"file", "/a", "hello"}})
				return ct, b[:len(b)-20]
			},
			wantCode: -1, // a read error, not a schema error
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ct, body := tt.body(t)
			h := http.Header{"Content-Type": {ct}}
			if tt.gzip {
				body = gzipped(t, body)
				h.Set("Content-Encoding", "gzip")
			} else if tt.encoding != "" {
				h.Set("Content-Encoding", tt.encoding)
			}
			q, _ := url.ParseQuery(tt.query)
			u, err := newUploadReader(h, q, bytes.NewReader(body))
			var got []gotFile
			if err == nil {
				got, err = readAll(u)
			}
			switch {
			case tt.wantCode == 0 && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantCode > 0 && (err == nil || schema.CodeOf(err) != tt.wantCode):
				t.Fatalf("error %v, want code %d", err, tt.wantCode)
			case tt.wantCode < 0 && err == nil:
				t.Fatal("no error for a broken body")
			}
			if len(got) != 0 || len(tt.want) != 0 {
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("files = %q, want %q", got, tt.want)
				}
			}
		})
	}
}

// TestUploadReaderStreams checks that a file is handed over before the body has been read to its end:
// the reader never buffers a whole file.
func TestUploadReaderStreams(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	first := make(chan struct{})
	go func() {
		w, _ := mw.CreateFormFile("file", "/big")
		_, _ = w.Write(bytes.Repeat([]byte("x"), 1<<20))
		<-first // the reader must get here before the rest of the body exists
		_, _ = w.Write([]byte("end"))
		_ = mw.Close()
		_ = pw.Close()
	}()
	u, err := newUploadReader(http.Header{"Content-Type": {mw.FormDataContentType()}}, nil, pr)
	if err != nil {
		t.Fatal(err)
	}
	f, err := u.Next()
	if err != nil || f.Path != "/big" {
		t.Fatalf("Next = %+v, %v", f, err)
	}
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(f.Body, buf); err != nil {
		t.Fatal(err)
	}
	close(first)
	rest, err := io.ReadAll(f.Body)
	if err != nil || string(rest) != "end" {
		t.Fatalf("rest = %q, %v", rest, err)
	}
	if _, err := u.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last file: %v, want io.EOF", err)
	}
}

func TestMetadataFromHeaders(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("X-Metadata-Owner", "team-a")
	h.Set("x-metadata-Build", "42")
	h.Set("X-Other", "no")
	md, err := metadataFromHeaders(h)
	if err != nil || !reflect.DeepEqual(md, map[string]string{"owner": "team-a", "build": "42"}) {
		t.Fatalf("metadata = %v, %v", md, err)
	}
	h.Set("X-Metadata-Bad", "caf\u00e9")
	if _, err := metadataFromHeaders(h); schema.CodeOf(err) != 400 {
		t.Fatalf("non-ASCII value: %v, want 400", err)
	}
	if md, err := metadataFromHeaders(http.Header{}); err != nil || md != nil {
		t.Fatalf("no headers: %v %v", md, err)
	}
}
