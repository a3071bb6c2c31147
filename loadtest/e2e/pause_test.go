package e2e

// Pause, resume, connect and snapshots over plain net/http: statuses, error shapes and response shapes
// the SDKs depend on, including the deprecated POST /sandboxes/{id}/resume no current SDK sends.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

func TestRawPauseAndSnapshots(t *testing.T) {
	defer stopOnPanic()
	hh := requireServer(t)
	sb := hh.createSandbox(t, templateCodeInterpeter, map[string]any{"metadata": map[string]string{"e2e": "raw-pause"}})
	base := "/sandboxes/" + sb.SandboxID

	expect := func(t *testing.T, r rawResp, what string, want int) {
		t.Helper()
		if want >= 400 {
			checkErrorBody(t, what, r, want)
			return
		}
		if r.status != want {
			t.Fatalf("%s: got %s, want %d", what, r, want)
		}
		if want == http.StatusNoContent && len(r.body) != 0 {
			t.Fatalf("%s: 204 with a body %q (openapi-fetch would try to parse it)", what, r.body)
		}
	}
	state := func(t *testing.T) string {
		t.Helper()
		r := hh.do(t, "GET", base, nil, "")
		if r.status != 200 {
			t.Fatalf("GET %s: %s", base, r)
		}
		m := decodeObject(t, r)
		checkListedFields(t, "SandboxDetail", m)
		s, _ := m["state"].(string)
		return s
	}

	t.Run("pause, pause again, data plane of a paused sandbox", func(t *testing.T) {
		expect(t, hh.do(t, "POST", base+"/pause", nil, `{}`), "first pause", 204)
		expect(t, hh.do(t, "POST", base+"/pause", nil, `{"memory":true}`), "second pause", 409)
		if s := state(t); s != "paused" {
			t.Fatalf("state after pause: %q", s)
		}
		// E2B's proxy answers 409 JSON for a paused sandbox; anything but a hang or a 5xx will do for the SDKs.
		for _, dp := range []struct{ method, path, port, body string }{
			{"GET", "/health", envdPort, ""},
			{"POST", "/execute", codeInterpreterPort, `{"code":"1"}`},
		} {
			r := hh.do(t, dp.method, dp.path, dataPlane(sb.SandboxID, dp.port, sb.EnvdAccessToken), dp.body)
			var e map[string]any
			if r.status != http.StatusConflict || json.Unmarshal(r.body, &e) != nil || e["code"] != float64(409) {
				t.Errorf("%s %s on a paused sandbox: %s, want 409 JSON", dp.method, dp.path, r)
			}
		}
	})
	t.Run("deprecated resume", func(t *testing.T) {
		r := hh.do(t, "POST", base+"/resume", nil, `{"timeout":120,"autoPause":false}`)
		expect(t, r, "resume of a paused sandbox", 201)
		if got := checkSandboxShape(t, "resume", r); got.SandboxID != sb.SandboxID || got.EnvdAccessToken != sb.EnvdAccessToken {
			t.Fatalf("resume answered %+v, want the same sandbox and token", got)
		}
		expect(t, hh.do(t, "POST", base+"/resume", nil, `{"timeout":120}`), "resume of a running sandbox", 409)
		if s := state(t); s != "running" {
			t.Fatalf("state after resume: %q", s)
		}
	})
	t.Run("connect resumes (201), then extends (200)", func(t *testing.T) {
		expect(t, hh.do(t, "POST", base+"/pause", nil, ""), "pause without a body", 204)
		r := hh.do(t, "POST", "/v2"+base+"/connect", nil, `{}`)
		expect(t, r, "v2 connect of a paused sandbox", 201)
		checkSandboxShape(t, "v2 connect", r)
		expect(t, hh.do(t, "POST", "/v2"+base+"/connect", nil, `{}`), "v2 connect of a running sandbox", 200)
		expect(t, hh.do(t, "POST", base+"/pause", nil, `{}`), "pause", 204)
		expect(t, hh.do(t, "POST", base+"/connect", nil, `{"timeout":300}`), "v1 connect of a paused sandbox", 201)
		r = hh.do(t, "GET", "/health", dataPlane(sb.SandboxID, envdPort, sb.EnvdAccessToken), "")
		if r.status/100 != 2 {
			t.Fatalf("envd /health after resume: %s", r)
		}
	})
	t.Run("unknown sandboxes", func(t *testing.T) {
		for _, p := range []string{"/pause", "/resume", "/snapshots"} {
			expect(t, hh.do(t, "POST", "/sandboxes/"+nonexistentSandboxID+p, nil, `{}`), "POST "+p+" of an unknown sandbox", 404)
		}
		expect(t, hh.do(t, "DELETE", "/templates/"+nonexistentSandboxID, nil, ""), "delete an unknown snapshot", 404)
		expect(t, hh.do(t, "DELETE", "/templates/base", nil, ""), "delete a built-in template", 404)
	})
	t.Run("snapshot, create from it, list, delete", func(t *testing.T) {
		r := hh.do(t, "POST", base+"/snapshots", nil, `{}`)
		expect(t, r, "snapshot", 201)
		var snap struct {
			SnapshotID string   `json:"snapshotID"`
			Names      []string `json:"names"`
		}
		if err := json.Unmarshal(r.body, &snap); err != nil || snap.SnapshotID == "" || snap.Names == nil {
			t.Fatalf("snapshot body %s: want snapshotID and names (both required by Python)", r)
		}
		t.Cleanup(func() { hh.do(t, "DELETE", "/templates/"+snap.SnapshotID, nil, "") })

		child := hh.createSandbox(t, snap.SnapshotID, nil)
		if child.TemplateID != snap.SnapshotID {
			t.Errorf("sandbox from snapshot %s has templateID %q", snap.SnapshotID, child.TemplateID)
		}
		r = hh.do(t, "GET", "/snapshots?sandboxID="+url.QueryEscape(sb.SandboxID), nil, "")
		if r.status != 200 {
			t.Fatalf("GET /snapshots: %s", r)
		}
		var list []map[string]any
		if err := json.Unmarshal(r.body, &list); err != nil {
			t.Fatalf("GET /snapshots body %s: %v", r, err)
		}
		var ids []string
		for _, s := range list {
			ids = append(ids, fmt.Sprint(s["snapshotID"]))
		}
		if !slices.Contains(ids, snap.SnapshotID) {
			t.Fatalf("GET /snapshots?sandboxID=%s = %v, want %s in it", sb.SandboxID, ids, snap.SnapshotID)
		}
		expect(t, hh.do(t, "GET", "/snapshots?limit=0", nil, ""), "list with limit 0", 400)
		expect(t, hh.do(t, "DELETE", "/templates/"+snap.SnapshotID, nil, ""), "delete snapshot", 204)
		expect(t, hh.do(t, "DELETE", "/templates/"+snap.SnapshotID, nil, ""), "delete it again", 404)
		checkErrorBody(t, "create from a deleted snapshot", hh.do(t, "POST", "/v2/sandboxes", nil,
			fmt.Sprintf(`{"templateID":%q}`, snap.SnapshotID)), 400, 404)
	})
}
