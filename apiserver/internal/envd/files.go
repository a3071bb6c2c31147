package envd

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

// commitTimeout bounds the wait for the worker to finish an upload once its bytes are sent. It does not
// depend on the client: the worker gets its commit even when the client went away.
const commitTimeout = 60 * time.Second

// download serves GET /files: the file's bytes stream from the worker to the client chunk by chunk, with
// Content-Length from the worker's EntryInfo. Large bodies are never compressed on the fly: gzip is used
// only when the client refuses identity.
func (s *service) download(w http.ResponseWriter, r *http.Request) {
	id := s.Record(r.Context()).ID
	q := r.URL.Query()
	enc, err := downloadEncoding(r.Header.Values("Accept-Encoding"))
	if err != nil {
		httpjson.Error(w, nil, err)
		return
	}
	req := schema.FileReadRequest{Stream: newStreamName(), Path: q.Get("path"), User: q.Get("username")}
	rd, info, err := openOp[schema.EntryInfo](r.Context(), s, id, schema.OpFileRead, req.Stream, req)
	if err != nil {
		s.httpError(w, id, err)
		return
	}
	defer rd.Close()
	if info.Type == schema.FileTypeDirectory {
		httpjson.Error(w, nil, schema.Errorf(http.StatusBadRequest, "path '%s' is a directory", info.Path))
		return
	}

	name := info.Name
	if name == "" {
		name = path.Base(req.Path)
	}
	h := w.Header()
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Type", ctype)
	if cd := mime.FormatMediaType("inline", map[string]string{"filename": name}); cd != "" {
		h.Set("Content-Disposition", cd)
	} else {
		h.Set("Content-Disposition", "inline")
	}
	h.Set("Vary", "Accept-Encoding")
	var dst io.Writer = w
	if enc == "gzip" {
		h.Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		defer zw.Close()
		dst = zw
	} else {
		h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	for {
		chunk, err := rd.Next(r.Context())
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			// The status is out; cut the connection so the client sees a broken body, not a short file.
			if r.Context().Err() == nil {
				s.Log.Warn("file download ended abnormally", "sandbox_id", id, "path", req.Path, "error", err)
			}
			panic(http.ErrAbortHandler)
		}
		if _, err := dst.Write(chunk); err != nil {
			panic(http.ErrAbortHandler)
		}
	}
}

// downloadEncoding picks the content coding of a download: identity unless the client refuses it
// (identity;q=0, or *;q=0 without identity), then gzip if accepted; nothing acceptable is a 406.
func downloadEncoding(accept []string) (string, error) {
	identity, gzipQ, star := -1.0, -1.0, -1.0
	for _, header := range accept {
		for _, item := range strings.Split(header, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(item), ";")
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
						q = f
					}
				}
			}
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "identity":
				identity = q
			case "gzip", "x-gzip":
				gzipQ = q
			case "*":
				star = q
			}
		}
	}
	if identity < 0 {
		identity = 1 // implicitly acceptable (RFC 9110 §12.5.3) unless * refuses it
		if star == 0 {
			identity = 0
		}
	}
	if gzipQ < 0 {
		gzipQ = max(star, 0)
	}
	switch {
	case identity > 0:
		return "", nil
	case gzipQ > 0:
		return "gzip", nil
	}
	return "", schema.Errorf(http.StatusNotAcceptable, "no acceptable encoding found, supported: [identity gzip]")
}

// uploadEntry is one element of POST /files' answer.
type uploadEntry struct {
	Path     string            `json:"path"`
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// upload serves POST /files: each file of the body is streamed to the worker as it is read
// (OpFileWriteBegin, the bytes on a bus stream, OpFileWriteCommit), so no file is held in memory.
func (s *service) upload(w http.ResponseWriter, r *http.Request) {
	id := s.Record(r.Context()).ID
	q := r.URL.Query()
	md, err := metadataFromHeaders(r.Header)
	if err != nil {
		httpjson.Error(w, nil, err)
		return
	}
	files, err := newUploadReader(r.Header, q, r.Body)
	if err != nil {
		httpjson.Error(w, nil, err)
		return
	}
	var out []uploadEntry
	for {
		f, err := files.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			httpjson.Error(w, nil, err)
			return
		}
		e, err := s.writeFile(r.Context(), id, f, q.Get("username"), md)
		if err != nil {
			s.httpError(w, id, err)
			return
		}
		for _, prev := range out {
			if prev.Path == e.Path { // two names for one file (a relative and an absolute path)
				httpjson.Error(w, nil, sameDestination(e.Path))
				return
			}
		}
		name := e.Name
		if name == "" {
			name = path.Base(e.Path)
		}
		out = append(out, uploadEntry{Path: e.Path, Name: name, Type: "file", Metadata: e.Metadata})
	}
	if len(out) == 0 {
		httpjson.Error(w, nil, schema.Errorf(http.StatusBadRequest, "no file in the upload: send parts named \"file\""))
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

// writeFile streams one file to the worker and returns what it wrote. Every begun upload is committed,
// even a failed one, so the worker always learns how it ended; its answer says why a write failed (a
// full disk is 507).
func (s *service) writeFile(ctx context.Context, id string, f uploadFile, user string, md map[string]string) (schema.EntryInfo, error) {
	req := schema.FileWriteRequest{Stream: newStreamName(), Path: f.Path, User: user, Metadata: md}
	sw, err := bus.NewStreamWriter(s.Sandboxes.Bus.NC, id, req.Stream)
	if err != nil {
		return schema.EntryInfo{}, err
	}
	if _, err := lifecycle.Request[schema.Empty](ctx, s.Sandboxes, id, schema.OpFileWriteBegin, req); err != nil {
		_ = sw.Close(err) // nobody reads it; this drops the credit subscription
		return schema.EntryInfo{}, err
	}
	readErr, sendErr := copyChunks(sw, f.Body)
	switch {
	case readErr != nil:
		_ = sw.Close(schema.Errorf(http.StatusBadRequest, "upload body ended early: %v", readErr))
	case sendErr != nil:
		_ = sw.Close(sendErr)
	default:
		sendErr = sw.Close(nil)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	entry, commitErr := lifecycle.Request[schema.EntryInfo](cctx, s.Sandboxes, id, schema.OpFileWriteCommit, schema.FileWriteCommit{Stream: req.Stream})
	switch {
	case readErr != nil:
		return schema.EntryInfo{}, schema.Errorf(http.StatusBadRequest, "read upload of %s: %v", f.Path, readErr)
	case commitErr != nil:
		return schema.EntryInfo{}, commitErr
	case sendErr != nil:
		return schema.EntryInfo{}, sendErr
	}
	return entry, nil
}

// copyChunks copies src to dst in chunks of the bus's chunk size (a multipart part reads a few KiB at a
// time; sending those as they come would multiply the messages). It tells a failure to read src from a
// failure to write dst.
func copyChunks(dst io.Writer, src io.Reader) (readErr, writeErr error) {
	buf := make([]byte, bus.DefaultChunkSize)
	for {
		n, err := fill(src, buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// fill reads until buf is full or src fails; unlike io.ReadFull it passes src's error through as is (a
// truncated body's io.ErrUnexpectedEOF must not look like a short last chunk).
func fill(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// envs serves GET /envs: the sandbox-global environment variables.
func (s *service) envs(w http.ResponseWriter, r *http.Request) {
	id := s.Record(r.Context()).ID
	env, err := lifecycle.Request[map[string]string](r.Context(), s.Sandboxes, id, schema.OpEnvs, schema.Empty{})
	if err != nil {
		s.httpError(w, id, err)
		return
	}
	if env == nil {
		env = map[string]string{}
	}
	httpjson.Write(w, http.StatusOK, env)
}

// httpError answers a failed operation of the HTTP endpoints: an owner that is gone is the proxy's 502;
// anything else keeps its status, in envd's {"code","message"} body.
func (s *service) httpError(w http.ResponseWriter, id string, err error) {
	if errors.Is(err, bus.ErrNoOwner) {
		proxyError(w, id)
		return
	}
	httpjson.Error(w, s.Log, err)
}
