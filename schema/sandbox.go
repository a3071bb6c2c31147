package schema

import "time"

// Record is the value stored under a sandbox's id in BucketSandboxes. The apiserver creates it (pending);
// after the claim its owner worker is the only writer, except that the apiserver may end a record whose
// owner is gone. Every write is a compare-and-set on the KV revision.
type Record struct {
	ID          string `json:"id"`
	TemplateID  string `json:"templateID"`
	Alias       string `json:"alias,omitempty"`
	State       State  `json:"state"`
	Reason      string `json:"reason,omitempty"`
	Worker      string `json:"worker,omitempty"`
	EnvdVersion string `json:"envdVersion"`
	// AccessToken is the envdAccessToken: required as X-Access-Token on the data plane when set.
	AccessToken string            `json:"accessToken,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	EnvVars     map[string]string `json:"envVars,omitempty"`
	CPUCount    int               `json:"cpuCount"`
	MemoryMB    int               `json:"memoryMB"`
	DiskSizeMB  int               `json:"diskSizeMB"`
	// Snapshot is the snapshot the sandbox was made from (its TemplateID is the snapshot's template); the
	// create is then placed on the worker holding it.
	Snapshot string `json:"snapshot,omitempty"`
	// ForkOf is the sandbox this one was forked from (through a snapshot that the fork then deleted).
	ForkOf string `json:"forkOf,omitempty"`
	// PausedAt is when the sandbox was last paused (zero while it runs).
	PausedAt time.Time `json:"pausedAt,omitzero"`
	// Egress is the sandbox's outbound network policy; nil: the runtime's default (no policy was asked for).
	Egress *Egress `json:"egress,omitempty"`
	// AutoResume: traffic to the paused sandbox resumes it (E2B's autoResume), for TimeoutSeconds.
	AutoResume bool `json:"autoResume,omitempty"`
	// TimeoutSeconds is the timeout the sandbox was created with.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// OnTimeout is what the owner does at EndAt: "kill" (default) or "pause".
	OnTimeout     string    `json:"onTimeout,omitempty"`
	AllowInternet *bool     `json:"allowInternet,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
	StartedAt     time.Time `json:"startedAt,omitzero"`
	EndAt         time.Time `json:"endAt"`
	EndedAt       time.Time `json:"endedAt,omitzero"`
}

// Egress is an outbound network policy: with AllowAll every destination but Deny is reachable, without it
// only Allow; Allow wins over Deny. Entries are IPv4 CIDRs or addresses, as E2B's allowOut and denyOut.
type Egress struct {
	AllowAll bool     `json:"allowAll"`
	Allow    []string `json:"allow,omitempty"`
	Deny     []string `json:"deny,omitempty"`
}

// Transition returns a copy of r moved to state to, or a *TransitionError.
func (r Record) Transition(to State, reason string) (Record, error) {
	if !CanTransition(r.State, to) {
		return r, &TransitionError{ID: r.ID, From: r.State, To: to}
	}
	r.State = to
	if reason != "" {
		r.Reason = reason
	}
	return r, nil
}

// Template describes what a sandbox starts from. The catalogue is small and static for now: each runtime
// maps a template id to its own image (a directory, a ZFS snapshot, a VM image).
type Template struct {
	ID         string   `json:"templateID"`
	Aliases    []string `json:"aliases"`
	CPUCount   int      `json:"cpuCount"`
	MemoryMB   int      `json:"memoryMB"`
	DiskSizeMB int      `json:"diskSizeMB"`
	// CodeInterpreter says whether the template serves the code interpreter (port 49999).
	CodeInterpreter bool `json:"codeInterpreter"`
}

// Templates is the built-in catalogue. `base` is the e2b SDK's default and `code-interpreter-v1` the code
// interpreter SDK's; both carry the Python kernel.
var Templates = []Template{
	{ID: "base", Aliases: []string{"base"}, CPUCount: 2, MemoryMB: 512, DiskSizeMB: 1024, CodeInterpreter: true},
	{ID: "code-interpreter-v1", Aliases: []string{"code-interpreter-v1", "code-interpreter"}, CPUCount: 2, MemoryMB: 1024, DiskSizeMB: 1024, CodeInterpreter: true},
}

// LookupTemplate finds a template by id or alias. E2B ids may carry a team prefix and a tag
// (`team/name:tag`); the name alone decides here.
func LookupTemplate(ref string) (Template, bool) {
	name := ref
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			name = name[i+1:]
			break
		}
	}
	for i := 0; i < len(name); i++ {
		if name[i] == ':' {
			name = name[:i]
			break
		}
	}
	for _, t := range Templates {
		if t.ID == name {
			return t, true
		}
		for _, a := range t.Aliases {
			if a == name {
				return t, true
			}
		}
	}
	return Template{}, false
}

// Sandbox defaults, as E2B documents them.
const (
	// EnvdVersion is the envd version we advertise. The SDKs gate features on it (0.6.13 enables all).
	EnvdVersion = "0.6.13"
	// DefaultTimeout applies when a create names none.
	DefaultTimeout = 300 * time.Second
	// MaxTimeout bounds the lifetime a client may ask for (E2B's Pro limit is 24 h).
	MaxTimeout = 24 * time.Hour
	// EnvdPort and CodeInterpreterPort are the in-sandbox ports the data plane routes by.
	EnvdPort            = 49983
	CodeInterpreterPort = 49999
)
