package fsops

import "errors"

// ErrMetadataUnsupported says the file system keeps no user metadata; callers ignore it (the file is
// written, its metadata is not kept).
var ErrMetadataUnsupported = errors.New("file system keeps no user metadata")
