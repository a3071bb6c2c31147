// Package logkey names the structured log attributes every worker package uses, so that a sandbox or a
// worker is spelled the same way in every line (e2b's logger.WithSandboxID, litestream's LogKey*).
package logkey

const (
	// SandboxID is the sandbox a line is about.
	SandboxID = "sandbox_id"
	// WorkerID is the worker that logs.
	WorkerID = "worker_id"
	// ContextID is a code-interpreter context.
	ContextID = "context_id"
	// Stream is the id of an output stream (one execution).
	Stream = "stream"
	// Subsystem is the part of the worker that logs (claim, ttl, heartbeat, runtime).
	Subsystem = "subsystem"
	// Error is the error of a failed step.
	Error = "error"
)
