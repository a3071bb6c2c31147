package schema

import "time"

// Reply is the envelope of every bus reply: exactly one of Data and Error is meaningful.
type Reply[T any] struct {
	Data  T      `json:"data,omitzero"`
	Error *Error `json:"error,omitempty"`
}

// Empty is the payload of replies that carry nothing.
type Empty struct{}

// CreateCommand asks some worker with free capacity to start a sandbox whose record is pending.
// The record holds everything else, so a redelivered command cannot disagree with it.
type CreateCommand struct {
	SandboxID string `json:"sandboxID"`
}

// KillRequest (OpKill) ends a sandbox.
type KillRequest struct {
	Reason string `json:"reason"`
}

// TimeoutRequest (OpTimeout) moves the sandbox's end. Extend only never shortens it (connect semantics).
type TimeoutRequest struct {
	EndAt      time.Time `json:"endAt"`
	ExtendOnly bool      `json:"extendOnly,omitempty"`
}

// PauseRequest (OpPause) stops every process of a running sandbox; they keep their memory and files on
// the owner worker. The sandbox then ends at EndAt (zero: the worker's retention for paused sandboxes).
// Errors: 409 if the sandbox is already paused, 501 if its runtime cannot pause.
type PauseRequest struct {
	EndAt time.Time `json:"endAt,omitzero"`
}

// ResumeRequest (OpResume) continues a paused sandbox, which then ends at EndAt. Errors: 409 if it is
// not paused.
type ResumeRequest struct {
	EndAt time.Time `json:"endAt"`
}

// SnapshotRequest (OpSnapshot) captures the sandbox's file system (not its processes' memory) as
// snapshot ID (a ValidSandboxID), known by Names. A running sandbox is paused for the capture and resumed
// after it. The owner stores the Snapshot in BucketSnapshots before it replies. Errors: 501 if the runtime
// cannot snapshot.
type SnapshotRequest struct {
	ID    string   `json:"id"`
	Names []string `json:"names,omitempty"`
}

// SnapshotDeleteRequest (OpSnapshotDelete) removes a snapshot from the worker that holds it and from
// BucketSnapshots.
type SnapshotDeleteRequest struct {
	ID string `json:"id"`
}

// Snapshot is one snapshot in BucketSnapshots. Its files live on Worker only: sandboxes made from it are
// placed there (OpWorkerCreate), and it is gone with that worker's data directory.
type Snapshot struct {
	ID    string   `json:"id"`
	Names []string `json:"names"`
	// SandboxID is the sandbox it was taken from; TemplateID, CPUCount, MemoryMB, DiskSizeMB and EnvVars
	// are that sandbox's, which new sandboxes from the snapshot inherit.
	SandboxID  string            `json:"sandboxID"`
	TemplateID string            `json:"templateID"`
	CPUCount   int               `json:"cpuCount"`
	MemoryMB   int               `json:"memoryMB"`
	DiskSizeMB int               `json:"diskSizeMB"`
	EnvVars    map[string]string `json:"envVars,omitempty"`
	Worker     string            `json:"worker"`
	Runtime    string            `json:"runtime"`
	CreatedAt  time.Time         `json:"createdAt"`
}

// NetworkRequest (OpNetwork) sets the sandbox's egress policy.
type NetworkRequest struct {
	Egress Egress `json:"egress"`
}

// MetricsRequest (OpMetrics) asks the owner for a new usage sample of the sandbox. The reply holds the
// samples it keeps for the sandbox (the latest ones, each taken by such a request), oldest first.
type MetricsRequest struct{}

// Metric is one usage sample of a sandbox: E2B's SandboxMetric. Sizes are bytes; CPUUsedPct is the
// percentage of the sandbox's CPUs (CPUCount) in use since the previous sample.
type Metric struct {
	Timestamp  time.Time `json:"timestamp"`
	CPUCount   int       `json:"cpuCount"`
	CPUUsedPct float64   `json:"cpuUsedPct"`
	MemUsed    int64     `json:"memUsed"`
	MemTotal   int64     `json:"memTotal"`
	MemCache   int64     `json:"memCache"`
	DiskUsed   int64     `json:"diskUsed"`
	DiskTotal  int64     `json:"diskTotal"`
}

// TimeoutReply reports the record after the change.
type TimeoutReply struct {
	Record Record `json:"record"`
}

// ExecuteRequest (OpExecute) runs code in a context. The worker replies once the execution is accepted
// (or with 404 for an unknown context), then writes NDJSON lines to the byte stream Stream of the sandbox.
type ExecuteRequest struct {
	Stream    string            `json:"stream"`
	Code      string            `json:"code"`
	ContextID string            `json:"contextID,omitempty"`
	Language  string            `json:"language,omitempty"`
	EnvVars   map[string]string `json:"envVars,omitempty"`
}

// InterruptRequest (OpInterrupt) interrupts the execution writing to Stream, if it still runs.
type InterruptRequest struct {
	Stream string `json:"stream"`
}

// CodeContext is a code-interpreter context: one interpreter with its own state.
type CodeContext struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Cwd      string `json:"cwd"`
}

// ContextCreateRequest (OpContextCreate) starts a new context.
type ContextCreateRequest struct {
	Language string `json:"language,omitempty"`
	Cwd      string `json:"cwd,omitempty"`
}

// ContextRequest (OpContextDelete, OpContextRestart) names one context.
type ContextRequest struct {
	ID string `json:"id"`
}

// WorkerInfo is a worker's heartbeat in BucketWorkers.
type WorkerInfo struct {
	ID        string    `json:"id"`
	Host      string    `json:"host"`
	Runtime   string    `json:"runtime"`
	Capacity  int       `json:"capacity"`
	Running   int       `json:"running"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"startedAt"`
	Draining  bool      `json:"draining,omitempty"`
	// MemoryAvailableMB is the host's available memory at the last beat (0 where unknown).
	MemoryAvailableMB int `json:"memoryAvailableMB,omitempty"`
	// Egress: the worker's runtime enforces egress policies (Record.Egress).
	Egress bool `json:"egress,omitempty"`
}

// Languages of code contexts, as the code interpreter names them.
const (
	LanguagePython = "python"
)

// DefaultContextCwd is the working directory of contexts that name none (E2B's default user home).
const DefaultContextCwd = "/home/user"
