package handlers

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"fleetbox.dev/schema"
)

func TestForkSandbox(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	src := e.running(true, func(r *schema.Record) { r.Metadata = map[string]string{"team": "a"} })
	resp := e.do(http.MethodPost, "/sandboxes/"+src.ID+"/fork", `{"count":2,"timeout":60}`)
	if resp.code != http.StatusCreated {
		t.Fatalf("fork: %d %s", resp.code, resp.body)
	}
	var out []struct {
		Sandbox *struct {
			SandboxID  string `json:"sandboxID"`
			TemplateID string `json:"templateID"`
		} `json:"sandbox"`
		Error *schema.Error `json:"error"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil || len(out) != 2 {
		t.Fatalf("fork body %s", resp.body)
	}
	for _, r := range out {
		if r.Sandbox == nil || r.Error != nil || r.Sandbox.TemplateID != "base" || r.Sandbox.SandboxID == src.ID {
			t.Fatalf("fork result %s", resp.body)
		}
		rec := e.record(r.Sandbox.SandboxID)
		if rec.ForkOf != src.ID || rec.State != schema.StateRunning || rec.Metadata["team"] != "a" {
			t.Fatalf("fork record %+v", rec)
		}
	}
	// The snapshot the fork went through is gone.
	e.worker.mu.Lock()
	deleted := slices.Clone(e.worker.deleted)
	e.worker.mu.Unlock()
	if len(deleted) != 1 {
		t.Fatalf("snapshots deleted: %v", deleted)
	}
	if snaps, err := e.bus.ListSnapshots(t.Context()); err != nil || len(snaps) != 0 {
		t.Fatalf("snapshots left: %v, %v", snaps, err)
	}
	for body, code := range map[string]int{`{"count":0}`: 400, `{"count":21}`: 400, `{"timeout":-1}`: 400} {
		if resp := e.do(http.MethodPost, "/sandboxes/"+src.ID+"/fork", body); resp.code != code {
			t.Errorf("fork %s: %d %s, want %d", body, resp.code, resp.body, code)
		}
	}
	if resp := e.do(http.MethodPost, "/sandboxes/"+schema.NewSandboxID()+"/fork", `{}`); resp.code != 404 {
		t.Errorf("fork of an unknown sandbox: %d", resp.code)
	}
}
