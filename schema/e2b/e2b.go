// Package e2b holds the wire models of E2B's public API exactly as the SDKs send and expect them: the
// control-plane REST bodies, the error body, and the code interpreter's /execute and /contexts bodies.
// Field names and optionality follow E2B's OpenAPI spec; see shared/reference/e2b-protocol.md §2 and §4.
package e2b

import (
	"encoding/json"
	"time"
)

// Error is E2B's error body. Code always equals the HTTP status: the JS SDK checks body.code, not the status.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// ProxyError is what E2B's sandbox proxy answers for an unknown or dead sandbox (HTTP 502).
type ProxyError struct {
	SandboxID string `json:"sandboxId"`
	Message   string `json:"message"`
	Code      int    `json:"code"`
}

// NewSandbox is the body of POST /sandboxes and POST /v2/sandboxes.
type NewSandbox struct {
	TemplateID          string            `json:"templateID"`
	Timeout             *int              `json:"timeout,omitempty"`
	AutoPause           *bool             `json:"autoPause,omitempty"`
	AutoPauseMemory     *bool             `json:"autoPauseMemory,omitempty"`
	AutoResume          json.RawMessage   `json:"autoResume,omitempty"`
	Secure              *bool             `json:"secure,omitempty"`
	AllowInternetAccess *bool             `json:"allow_internet_access,omitempty"`
	Metadata            map[string]string `json:"metadata,omitempty"`
	EnvVars             map[string]string `json:"envVars,omitempty"`
	MCP                 json.RawMessage   `json:"mcp,omitempty"`
	Network             *NetworkConfig    `json:"network,omitempty"`
	VolumeMounts        json.RawMessage   `json:"volumeMounts,omitempty"`
}

// Sandbox is the answer to create and connect.
type Sandbox struct {
	SandboxID          string  `json:"sandboxID"`
	TemplateID         string  `json:"templateID"`
	Alias              string  `json:"alias,omitempty"`
	ClientID           string  `json:"clientID"`
	EnvdVersion        string  `json:"envdVersion"`
	EnvdAccessToken    string  `json:"envdAccessToken,omitempty"`
	TrafficAccessToken *string `json:"trafficAccessToken"`
	Domain             *string `json:"domain"`
}

// ListedSandbox is one entry of GET /sandboxes and GET /v2/sandboxes.
type ListedSandbox struct {
	TemplateID  string            `json:"templateID"`
	Alias       string            `json:"alias,omitempty"`
	SandboxID   string            `json:"sandboxID"`
	ClientID    string            `json:"clientID"`
	StartedAt   time.Time         `json:"startedAt"`
	EndAt       time.Time         `json:"endAt"`
	CPUCount    int               `json:"cpuCount"`
	MemoryMB    int               `json:"memoryMB"`
	DiskSizeMB  int               `json:"diskSizeMB"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	State       string            `json:"state"`
	EnvdVersion string            `json:"envdVersion"`
}

// Lifecycle says what happens at the end of a sandbox's timeout.
type Lifecycle struct {
	AutoResume bool   `json:"autoResume"`
	OnTimeout  string `json:"onTimeout"`
}

// SandboxDetail is the answer to GET /sandboxes/{id}.
type SandboxDetail struct {
	ListedSandbox
	EnvdAccessToken     string         `json:"envdAccessToken,omitempty"`
	Domain              *string        `json:"domain"`
	AllowInternetAccess *bool          `json:"allowInternetAccess,omitempty"`
	Network             *NetworkConfig `json:"network,omitempty"`
	Lifecycle           *Lifecycle     `json:"lifecycle,omitempty"`
}

// NetworkConfig is E2B's SandboxNetworkConfig (the network of a create, and of a sandbox's detail). Only
// the egress lists are served; the other fields are kept raw so that a request using them can be refused.
type NetworkConfig struct {
	AllowOut           []string        `json:"allowOut,omitempty"`
	DenyOut            []string        `json:"denyOut,omitempty"`
	AllowPublicTraffic *bool           `json:"allowPublicTraffic,omitempty"`
	MaskRequestHost    json.RawMessage `json:"maskRequestHost,omitempty"`
	HTTPSPorts         json.RawMessage `json:"httpsPorts,omitempty"`
	EgressProxy        json.RawMessage `json:"egressProxy,omitempty"`
	Rules              json.RawMessage `json:"rules,omitempty"`
}

// NetworkUpdate is the body of PUT /sandboxes/{id}/network (E2B's SandboxNetworkUpdateConfig): omitted
// fields clear.
type NetworkUpdate struct {
	AllowOut            []string        `json:"allowOut,omitempty"`
	DenyOut             []string        `json:"denyOut,omitempty"`
	AllowInternetAccess *bool           `json:"allow_internet_access,omitempty"`
	EgressProxy         json.RawMessage `json:"egressProxy,omitempty"`
	Rules               json.RawMessage `json:"rules,omitempty"`
}

// ConnectSandbox is the body of POST /sandboxes/{id}/connect (timeout required) and of the /v2 variant
// (optional, default 300).
type ConnectSandbox struct {
	Timeout *int  `json:"timeout,omitempty"`
	Memory  *bool `json:"memory,omitempty"`
}

// SetTimeout is the body of POST /sandboxes/{id}/timeout.
type SetTimeout struct {
	Timeout *int `json:"timeout"`
}

// Refresh is the body of POST /sandboxes/{id}/refreshes.
type Refresh struct {
	Duration *int `json:"duration,omitempty"`
}

// ExecuteRequest is the body of the code interpreter's POST /execute.
type ExecuteRequest struct {
	Code      *string           `json:"code"`
	ContextID *string           `json:"context_id,omitempty"`
	Language  *string           `json:"language,omitempty"`
	EnvVars   map[string]string `json:"env_vars,omitempty"`
}

// CreateContext is the body of the code interpreter's POST /contexts.
type CreateContext struct {
	Language *string `json:"language,omitempty"`
	Cwd      *string `json:"cwd,omitempty"`
}

// Context is one code-interpreter context as the SDKs read it.
type Context struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Cwd      string `json:"cwd"`
}

// Health is what E2B's API answers on GET /health.
const HealthMessage = "Health check successful"

// Header names of the single-origin data plane.
const (
	HeaderSandboxID    = "E2b-Sandbox-Id"
	HeaderSandboxPort  = "E2b-Sandbox-Port"
	HeaderAccessToken  = "X-Access-Token"
	HeaderAPIKey       = "X-Api-Key"
	HeaderNextToken    = "X-Next-Token"
	HeaderTotalRunning = "X-Total-Running"
)
