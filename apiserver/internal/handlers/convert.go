package handlers

import (
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

func toSandbox(r schema.Record) e2b.Sandbox {
	return e2b.Sandbox{
		SandboxID:       r.ID,
		TemplateID:      templateOf(r),
		Alias:           r.Alias,
		ClientID:        clientID(r),
		EnvdVersion:     r.EnvdVersion,
		EnvdAccessToken: r.AccessToken,
	}
}

func toListed(r schema.Record) e2b.ListedSandbox {
	state := string(r.State)
	if r.State == schema.StateKilling {
		state = string(schema.StateRunning)
	}
	metadata := r.Metadata
	if metadata == nil {
		metadata = map[string]string{}
	}
	return e2b.ListedSandbox{
		TemplateID:  templateOf(r),
		Alias:       r.Alias,
		SandboxID:   r.ID,
		ClientID:    clientID(r),
		StartedAt:   r.StartedAt,
		EndAt:       r.EndAt,
		CPUCount:    r.CPUCount,
		MemoryMB:    r.MemoryMB,
		DiskSizeMB:  r.DiskSizeMB,
		Metadata:    metadata,
		State:       state,
		EnvdVersion: r.EnvdVersion,
	}
}

func toDetail(r schema.Record) e2b.SandboxDetail {
	return e2b.SandboxDetail{
		ListedSandbox:       toListed(r),
		EnvdAccessToken:     r.AccessToken,
		AllowInternetAccess: r.AllowInternet,
		Network:             networkOf(r.Egress),
		Lifecycle:           &e2b.Lifecycle{AutoResume: r.AutoResume, OnTimeout: r.OnTimeout},
	}
}

// networkOf shows an egress policy as E2B's network config (nil: none).
func networkOf(e *schema.Egress) *e2b.NetworkConfig {
	if e == nil || (len(e.Allow) == 0 && len(e.Deny) == 0) {
		return nil
	}
	return &e2b.NetworkConfig{AllowOut: e.Allow, DenyOut: e.Deny}
}

// templateOf is the templateID clients see: the snapshot a sandbox was made from (its id, as E2B shows
// the snapshot template's id), else its template.
func templateOf(r schema.Record) string {
	if r.Snapshot != "" && r.ForkOf == "" { // a fork's snapshot is gone: it shows its source's template
		return r.Snapshot
	}
	return r.TemplateID
}

// clientID is E2B's deprecated node id, still required by the Python SDK: the owner worker's id.
func clientID(r schema.Record) string {
	if r.Worker != "" {
		return r.Worker
	}
	return "fleetbox"
}
