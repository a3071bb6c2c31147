package schema

import "time"

// envd operations: what E2B's in-sandbox daemon serves on port 49983 (process.Process,
// filesystem.Filesystem, /files, /envs), carried over the bus to the owner worker. The apiserver speaks
// Connect and HTTP to clients and these messages to workers. Errors use HTTP statuses that map one to one
// onto Connect codes (400 invalid_argument, 401 unauthenticated, 404 not_found, 409 already_exists,
// 403 permission_denied, 412 failed_precondition, 429 resource_exhausted, 500 internal, 503 unavailable,
// 504 deadline_exceeded).
//
// Replies: OpProcessStart/Connect → ProcessStartReply; OpProcessList → []ProcessInfo; OpFsListDir →
// []EntryInfo; OpFsStat, OpFsMakeDir, OpFsMove, OpFileRead, OpFileWriteCommit → EntryInfo;
// OpFsWatcherCreate → WatcherRequest; OpFsWatcherEvents → []FsEvent; OpEnvs → map[string]string;
// every other op → Empty.
const (
	OpProcessStart      = "proc-start"
	OpProcessConnect    = "proc-connect"
	OpProcessList       = "proc-list"
	OpProcessInput      = "proc-input"
	OpProcessSignal     = "proc-signal"
	OpProcessCloseStdin = "proc-close-stdin"
	OpProcessUpdate     = "proc-update"

	OpFsStat          = "fs-stat"
	OpFsListDir       = "fs-list"
	OpFsMakeDir       = "fs-mkdir"
	OpFsMove          = "fs-move"
	OpFsRemove        = "fs-remove"
	OpFsWatch         = "fs-watch"
	OpFsWatcherCreate = "fs-watcher-create"
	OpFsWatcherEvents = "fs-watcher-events"
	OpFsWatcherRemove = "fs-watcher-remove"
	OpFileRead        = "file-read"
	OpFileWriteBegin  = "file-write-begin"
	OpFileWriteCommit = "file-write-commit"
	OpEnvs            = "envs"
)

// ProcessSelector names a process by pid or by tag.
type ProcessSelector struct {
	PID uint32 `json:"pid,omitempty"`
	Tag string `json:"tag,omitempty"`
}

// PTYSize is a terminal size.
type PTYSize struct {
	Cols uint32 `json:"cols"`
	Rows uint32 `json:"rows"`
}

// ProcessConfig is what a process was started with.
type ProcessConfig struct {
	Cmd  string            `json:"cmd"`
	Args []string          `json:"args,omitempty"`
	Envs map[string]string `json:"envs,omitempty"`
	Cwd  string            `json:"cwd,omitempty"`
}

// ProcessStartRequest (OpProcessStart) starts a process; its events go to byte stream Stream as JSON
// lines in envd's ProcessEvent shape ({"start":{"pid":1}}, {"data":{"stdout":"<base64>"}},
// {"keepalive":{}}, {"end":{...}}). The reply (ProcessStartReply) comes once the process runs.
type ProcessStartRequest struct {
	Stream  string        `json:"stream"`
	Process ProcessConfig `json:"process"`
	User    string        `json:"user,omitempty"`
	Tag     string        `json:"tag,omitempty"`
	PTY     *PTYSize      `json:"pty,omitempty"`
	// Stdin keeps a pipe open for OpProcessInput; false gives the process /dev/null.
	Stdin bool `json:"stdin,omitempty"`
	// Timeout, if set, is the process's lifetime (envd's Connect-Timeout-Ms): the process is killed then,
	// and the stream ends with a 504 error instead of an end event.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// ProcessStartReply names the started (or connected) process.
type ProcessStartReply struct {
	PID uint32 `json:"pid"`
}

// ProcessConnectRequest (OpProcessConnect) streams a running process's events from now on to Stream.
type ProcessConnectRequest struct {
	Stream  string          `json:"stream"`
	Process ProcessSelector `json:"process"`
	Timeout time.Duration   `json:"timeout,omitempty"`
}

// ProcessInfo is one entry of OpProcessList.
type ProcessInfo struct {
	Config ProcessConfig `json:"config"`
	PID    uint32        `json:"pid"`
	Tag    string        `json:"tag,omitempty"`
}

// ProcessInputRequest (OpProcessInput) writes to a process's stdin or its terminal.
type ProcessInputRequest struct {
	Process ProcessSelector `json:"process"`
	Stdin   []byte          `json:"stdin,omitempty"`
	PTY     []byte          `json:"pty,omitempty"`
}

// ProcessSignalRequest (OpProcessSignal) sends a signal (9 SIGKILL, 15 SIGTERM).
type ProcessSignalRequest struct {
	Process ProcessSelector `json:"process"`
	Signal  int             `json:"signal"`
}

// ProcessRequest (OpProcessCloseStdin) names a process.
type ProcessRequest struct {
	Process ProcessSelector `json:"process"`
}

// ProcessUpdateRequest (OpProcessUpdate) resizes a process's terminal.
type ProcessUpdateRequest struct {
	Process ProcessSelector `json:"process"`
	PTY     *PTYSize        `json:"pty,omitempty"`
}

// File types of EntryInfo, named as envd's FileType enum. Unspecified covers sockets, devices and the
// like (clients drop such entries from listings).
const (
	FileTypeUnspecified = "FILE_TYPE_UNSPECIFIED"
	FileTypeFile        = "FILE_TYPE_FILE"
	FileTypeDirectory   = "FILE_TYPE_DIRECTORY"
	FileTypeSymlink     = "FILE_TYPE_SYMLINK"
)

// EntryInfo describes a file in a sandbox. Path is the sandbox path (never a host path).
type EntryInfo struct {
	Name          string            `json:"name"`
	Type          string            `json:"type"`
	Path          string            `json:"path"`
	Size          int64             `json:"size"`
	Mode          uint32            `json:"mode"`
	Permissions   string            `json:"permissions"`
	Owner         string            `json:"owner"`
	Group         string            `json:"group"`
	ModifiedTime  time.Time         `json:"modifiedTime"`
	SymlinkTarget string            `json:"symlinkTarget,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
}

// FsRequest (OpFsStat, OpFsMakeDir, OpFsRemove) names a path; User is the run-as user whose home
// relative paths start from.
type FsRequest struct {
	Path string `json:"path"`
	User string `json:"user,omitempty"`
}

// FsListRequest (OpFsListDir) lists a directory down to Depth levels (at least 1).
type FsListRequest struct {
	Path  string `json:"path"`
	Depth int    `json:"depth"`
	User  string `json:"user,omitempty"`
}

// FsMoveRequest (OpFsMove) renames Source to Destination, replacing it.
type FsMoveRequest struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	User        string `json:"user,omitempty"`
}

// Filesystem event types, named as envd's EventType enum.
const (
	EventCreate = "EVENT_TYPE_CREATE"
	EventWrite  = "EVENT_TYPE_WRITE"
	EventRemove = "EVENT_TYPE_REMOVE"
	EventRename = "EVENT_TYPE_RENAME"
	EventChmod  = "EVENT_TYPE_CHMOD"
)

// FsEvent is one filesystem change; Name is relative to the watched directory.
type FsEvent struct {
	Name  string     `json:"name"`
	Type  string     `json:"type"`
	Entry *EntryInfo `json:"entry,omitempty"`
}

// FsWatchRequest (OpFsWatch, OpFsWatcherCreate) watches a directory. For OpFsWatch the events go to
// Stream as JSON lines ({"start":{}} first, then {"filesystem":FsEvent} and {"keepalive":{}}).
type FsWatchRequest struct {
	Stream       string `json:"stream,omitempty"`
	Path         string `json:"path"`
	Recursive    bool   `json:"recursive,omitempty"`
	IncludeEntry bool   `json:"includeEntry,omitempty"`
	User         string `json:"user,omitempty"`
}

// WatcherRequest (OpFsWatcherEvents, OpFsWatcherRemove) names a polling watcher; OpFsWatcherCreate
// answers with one.
type WatcherRequest struct {
	WatcherID string `json:"watcherId"`
}

// FileReadRequest (OpFileRead) sends a file's bytes on Stream; the reply (EntryInfo) comes first.
type FileReadRequest struct {
	Stream string `json:"stream"`
	Path   string `json:"path"`
	User   string `json:"user,omitempty"`
}

// FileWriteRequest (OpFileWriteBegin) opens an upload: the worker answers once it reads Stream, the
// apiserver writes the bytes to Stream, then asks OpFileWriteCommit (with the same Stream) for the result.
type FileWriteRequest struct {
	Stream   string            `json:"stream"`
	Path     string            `json:"path"`
	User     string            `json:"user,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// FileWriteCommit (OpFileWriteCommit) waits for an upload to finish and returns the written entry.
type FileWriteCommit struct {
	Stream string `json:"stream"`
}
