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
}

// Languages of code contexts, as the code interpreter names them.
const (
	LanguagePython = "python"
)

// DefaultContextCwd is the working directory of contexts that name none (E2B's default user home).
const DefaultContextCwd = "/home/user"
