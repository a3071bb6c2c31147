package handlers

// E2B wire models of the pause, resume and snapshot endpoints, as E2B's OpenAPI spec names them (see
// shared/reference/e2b-protocol.md §2.3–2.4). The rest of the REST models live in schema/e2b.

// PauseSandbox is the optional body of POST /sandboxes/{id}/pause (E2B's SandboxPauseRequest). Memory
// false asks for a file-system-only pause; sandboxes here always pause in place with their memory, which
// is more than was asked, so it is accepted. The Python SDK's strict mode sends RequireHealthyGuest.
type PauseSandbox struct {
	Memory              *bool `json:"memory,omitempty"`
	RequireHealthyGuest *bool `json:"requireHealthyGuest,omitempty"`
}

// ResumedSandbox is the body of the deprecated POST /sandboxes/{id}/resume. Timeout is in seconds
// (default 15, as in E2B's spec).
type ResumedSandbox struct {
	Timeout   *int  `json:"timeout,omitempty"`
	AutoPause *bool `json:"autoPause,omitempty"`
}

// NewSnapshot is the optional body of POST /sandboxes/{id}/snapshots (E2B's SandboxSnapshotRequest).
// Memory true asks for a snapshot with the processes' memory, which snapshots here never have.
type NewSnapshot struct {
	Name   *string `json:"name,omitempty"`
	Memory *bool   `json:"memory,omitempty"`
}

// SnapshotInfo is one snapshot as POST /sandboxes/{id}/snapshots and GET /snapshots answer it; both
// fields are required by the Python SDK.
type SnapshotInfo struct {
	SnapshotID string   `json:"snapshotID"`
	Names      []string `json:"names"`
}
