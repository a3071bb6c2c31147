package fsops

import (
	"bytes"
	"fmt"
	"strings"
	"syscall"
)

// MetadataPrefix is the extended-attribute namespace of user metadata (X-Metadata-* of uploads).
const MetadataPrefix = "user.e2b."

// ReadMetadata returns the user metadata stored in a file's extended attributes, or nil.
func ReadMetadata(host string) map[string]string {
	size, err := syscall.Listxattr(host, nil)
	if err != nil || size == 0 {
		return nil
	}
	buf := make([]byte, size)
	n, err := syscall.Listxattr(host, buf)
	if err != nil {
		return nil
	}
	var out map[string]string
	for name := range bytes.SplitSeq(buf[:n], []byte{0}) {
		key, ok := strings.CutPrefix(string(name), MetadataPrefix)
		if !ok || key == "" {
			continue
		}
		vsize, err := syscall.Getxattr(host, string(name), nil)
		if err != nil {
			continue
		}
		val := make([]byte, vsize)
		m, err := syscall.Getxattr(host, string(name), val)
		if err != nil {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[key] = string(val[:m])
	}
	return out
}

// WriteMetadata stores metadata as extended attributes of a file. A file system without user
// attributes makes it fail with ErrMetadataUnsupported.
func WriteMetadata(host string, md map[string]string) error {
	for k, v := range md {
		if err := syscall.Setxattr(host, MetadataPrefix+k, []byte(v), 0); err != nil {
			if err == syscall.ENOTSUP || err == syscall.EOPNOTSUPP {
				return ErrMetadataUnsupported
			}
			return fmt.Errorf("set metadata %q: %w", k, err)
		}
	}
	return nil
}
