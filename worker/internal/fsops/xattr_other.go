//go:build !linux

package fsops

// ReadMetadata returns nil: metadata is kept in extended attributes on Linux only for now (FreeBSD's
// extattr calls would be the place to add it).
func ReadMetadata(string) map[string]string { return nil }

// WriteMetadata reports ErrMetadataUnsupported unless md is empty.
func WriteMetadata(_ string, md map[string]string) error {
	if len(md) == 0 {
		return nil
	}
	return ErrMetadataUnsupported
}
