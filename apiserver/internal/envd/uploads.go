package envd

import (
	"compress/gzip"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strings"

	"fleetbox.dev/schema"
)

// uploadFile is one file of a POST /files body: where it goes (as the client named it; the worker
// resolves relative paths) and its bytes, read incrementally from the request body.
type uploadFile struct {
	Path string
	Body io.Reader
}

// uploadReader yields the files of a POST /files body one at a time, in order, without buffering them:
// a multipart/form-data body (each part named "file" is a file whose filename is its full destination
// path; ?path= wins over it) or a raw application/octet-stream body (?path= required).
type uploadReader struct {
	queryPath string
	hasPath   bool
	raw       io.Reader // octet-stream body not yet returned
	mr        *multipart.Reader
	part      *multipart.Part
	seen      map[string]bool
}

// newUploadReader inspects the request's headers and prepares to read its files. A gzip
// Content-Encoding is decoded on the fly.
func newUploadReader(h http.Header, query map[string][]string, body io.Reader) (*uploadReader, error) {
	u := &uploadReader{seen: map[string]bool{}}
	if p, ok := query["path"]; ok && len(p) > 0 {
		u.queryPath, u.hasPath = p[0], true
	}
	switch enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, schema.Errorf(http.StatusBadRequest, "error decompressing request body: %v", err)
		}
		body = zr
	default:
		return nil, schema.Errorf(http.StatusBadRequest, "unsupported Content-Encoding: %s, supported: [gzip]", enc)
	}
	mediaType, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	switch {
	case mediaType == "application/octet-stream":
		if !u.hasPath || u.queryPath == "" {
			return nil, schema.Errorf(http.StatusBadRequest, "path query parameter is required for raw body upload")
		}
		u.raw = body
	case strings.HasPrefix(mediaType, "multipart/"):
		if params["boundary"] == "" {
			return nil, schema.Errorf(http.StatusBadRequest, "multipart body without a boundary")
		}
		u.mr = multipart.NewReader(body, params["boundary"])
	default:
		return nil, schema.Errorf(http.StatusBadRequest, "unsupported content type: %q, expected multipart/form-data or application/octet-stream", h.Get("Content-Type"))
	}
	return u, nil
}

// Next returns the next file, or io.EOF after the last. The previous file's body must have been read
// to its end (or abandoned) first. Two files for the same path are a 400.
func (u *uploadReader) Next() (uploadFile, error) {
	if u.raw != nil {
		f := uploadFile{Path: u.queryPath, Body: u.raw}
		u.raw = nil
		return f, u.claim(f.Path)
	}
	if u.mr == nil {
		return uploadFile{}, io.EOF
	}
	for {
		if u.part != nil {
			_ = u.part.Close()
			u.part = nil
		}
		part, err := u.mr.NextPart()
		if errors.Is(err, io.EOF) {
			u.mr = nil
			return uploadFile{}, io.EOF
		}
		if err != nil {
			return uploadFile{}, schema.Errorf(http.StatusBadRequest, "error reading multipart body: %v", err)
		}
		u.part = part
		if part.FormName() != "file" {
			continue // envd ignores other fields
		}
		p := u.queryPath
		if !u.hasPath {
			// Part.FileName() keeps only the base name; the SDKs put the whole destination path there.
			p = rawFileName(part.Header.Get("Content-Disposition"))
		}
		if p == "" {
			return uploadFile{}, schema.Errorf(http.StatusBadRequest, "file part without a path: give ?path= or the destination path as the part's filename")
		}
		return uploadFile{Path: p, Body: part}, u.claim(p)
	}
}

// claim records a destination, refusing one already used by this upload (envd's rule: only the first
// file for a path is written).
func (u *uploadReader) claim(p string) error {
	key := path.Clean(p)
	if u.seen[key] {
		return sameDestination(p)
	}
	u.seen[key] = true
	return nil
}

func sameDestination(p string) error {
	return schema.Errorf(http.StatusBadRequest, "you cannot upload multiple files to the same path '%s' in one upload request, only the first specified file was uploaded", p)
}

// rawFileName returns the filename parameter of a Content-Disposition header as sent, directories
// included.
func rawFileName(disposition string) string {
	_, params, err := mime.ParseMediaType(disposition)
	if err != nil {
		return ""
	}
	return params["filename"]
}

// metadataFromHeaders collects X-Metadata-<key> headers (keys lower-cased, as envd stores them).
func metadataFromHeaders(h http.Header) (map[string]string, error) {
	const prefix = "X-Metadata-"
	var md map[string]string
	for k, vs := range h {
		if len(k) <= len(prefix) || !strings.EqualFold(k[:len(prefix)], prefix) || len(vs) == 0 {
			continue
		}
		key := strings.ToLower(k[len(prefix):])
		for _, s := range []string{key, vs[0]} {
			if !printableASCII(s) {
				return nil, schema.Errorf(http.StatusBadRequest, "metadata %q: keys and values must be printable ASCII", key)
			}
		}
		if md == nil {
			md = map[string]string{}
		}
		md[key] = vs[0]
	}
	return md, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
