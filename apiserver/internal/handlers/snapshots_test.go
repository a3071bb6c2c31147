package handlers

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

func TestCreateSnapshot(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	taken := e.running(true)
	if resp := e.do("POST", "/sandboxes/"+taken.ID+"/snapshots", `{"name":"taken"}`); resp.code != 201 {
		t.Fatalf("first snapshot named taken: %d %s", resp.code, resp.body)
	}
	tests := []struct {
		name      string
		body      string
		rec       func(*schema.Record)
		serve     bool
		wantCode  int
		wantMsg   string
		wantNamed string // the snapshot's one name; "" = its id
	}{
		{name: "no body", serve: true, wantCode: 201},
		{name: "empty object (js)", body: `{}`, serve: true, wantCode: 201},
		{name: "named", body: `{"name":"my-snap_1.0"}`, serve: true, wantCode: 201, wantNamed: "my-snap_1.0"},
		{name: "file system mode (python)", body: `{"memory":false}`, serve: true, wantCode: 201},
		{name: "of a paused sandbox", rec: func(r *schema.Record) { r.State = schema.StatePaused }, serve: true, wantCode: 201},
		{name: "memory refused", body: `{"memory":true}`, serve: true, wantCode: 400, wantMsg: "file system only"},
		{name: "name taken", body: `{"name":"taken"}`, serve: true, wantCode: 409, wantMsg: "already exists"},
		{name: "name of a template", body: `{"name":"base"}`, serve: true, wantCode: 409, wantMsg: "built-in template"},
		{name: "name with a slash", body: `{"name":"team/x"}`, serve: true, wantCode: 400, wantMsg: "invalid snapshot name"},
		{name: "name too long", body: fmt.Sprintf(`{"name":%q}`, strings.Repeat("a", 129)), serve: true, wantCode: 400},
		{name: "killed sandbox", rec: func(r *schema.Record) { r.State = schema.StateKilled }, wantCode: 404},
		{name: "owner gone", wantCode: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var edits []func(*schema.Record)
			if tt.rec != nil {
				edits = append(edits, tt.rec)
			}
			rec := e.running(tt.serve, edits...)
			resp := e.do("POST", "/sandboxes/"+rec.ID+"/snapshots", tt.body)
			if resp.code != tt.wantCode {
				t.Fatalf("status %d (%s), want %d", resp.code, resp.body, tt.wantCode)
			}
			if tt.wantCode != 201 {
				if msg := resp.errMessage(t); !strings.Contains(msg, tt.wantMsg) {
					t.Fatalf("message %q, want it to contain %q", msg, tt.wantMsg)
				}
				return
			}
			info := decode[SnapshotInfo](t, resp)
			want := tt.wantNamed
			if want == "" {
				want = info.SnapshotID
			}
			if !schema.ValidSandboxID(info.SnapshotID) || !slices.Equal(info.Names, []string{want}) {
				t.Fatalf("snapshot %+v, want a fresh id and names [%s]", info, want)
			}
			stored, err := e.bus.GetSnapshot(t.Context(), info.SnapshotID)
			if err != nil || stored.SandboxID != rec.ID {
				t.Fatalf("stored snapshot %+v, %v", stored, err)
			}
		})
	}
}

func TestListSnapshots(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	base := time.Now().UTC()
	src := schema.NewSandboxID()
	var all []string // newest first
	for i := range 5 {
		s := schema.Snapshot{ID: schema.NewSandboxID(), SandboxID: schema.NewSandboxID(), Worker: fakeWorkerID, CreatedAt: base.Add(time.Duration(i) * time.Second)}
		s.Names = []string{s.ID}
		if i == 2 {
			s.Names = []string{"named"}
		}
		if i%2 == 0 {
			s.SandboxID = src
		}
		if err := e.bus.PutSnapshot(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		all = append([]string{s.ID}, all...)
	}
	list := func(query string) ([]string, string) {
		t.Helper()
		resp := e.do("GET", "/snapshots?"+query, "")
		if resp.code != 200 {
			t.Fatalf("GET /snapshots?%s: %d %s", query, resp.code, resp.body)
		}
		var ids []string
		for _, s := range decode[[]SnapshotInfo](t, resp) {
			if len(s.Names) == 0 {
				t.Fatalf("snapshot %s without names", s.SnapshotID)
			}
			ids = append(ids, s.SnapshotID)
		}
		return ids, resp.header.Get(e2b.HeaderNextToken)
	}
	for query, want := range map[string][]string{
		"":                 all,
		"sandboxID=" + src: {all[0], all[2], all[4]},
		"name=named":       {all[2]},
		"name=" + url.QueryEscape("team/named:default"): {all[2]},
		"name=" + all[1]:                   {all[1]},
		"name=nothing":                     nil,
		"sandboxID=" + src + "&name=named": {all[2]},
	} {
		if got, next := list(query); !slices.Equal(got, want) || next != "" {
			t.Errorf("GET /snapshots?%s = %v (next %q), want %v", query, got, next, want)
		}
	}
	// Paging: two per page, the cursor in X-Next-Token, none on the last page.
	var got []string
	query := "limit=2"
	for pages := 0; ; pages++ {
		ids, next := list(query)
		got = append(got, ids...)
		if next == "" {
			break
		}
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		query = "limit=2&nextToken=" + url.QueryEscape(next)
	}
	if !slices.Equal(got, all) {
		t.Fatalf("paged %v, want %v", got, all)
	}
	for _, bad := range []string{"limit=0", "limit=101", "limit=x", "nextToken=%21%21"} {
		if resp := e.do("GET", "/snapshots?"+bad, ""); resp.code != 400 {
			t.Errorf("GET /snapshots?%s: %d, want 400", bad, resp.code)
		} else {
			resp.errMessage(t)
		}
	}
}

func TestDeleteSnapshot(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	put := func(worker, name string) schema.Snapshot {
		s := schema.Snapshot{ID: schema.NewSandboxID(), Worker: worker, CreatedAt: time.Now().UTC()}
		s.Names = []string{s.ID}
		if name != "" {
			s.Names = []string{name}
		}
		if err := e.bus.PutSnapshot(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	exists := func(id string) bool {
		_, err := e.bus.GetSnapshot(t.Context(), id)
		return err == nil
	}
	byID, byName, escaped := put(fakeWorkerID, ""), put(fakeWorkerID, "by-name"), put(fakeWorkerID, "esc")
	gone := put("dead-worker", "")
	tests := []struct {
		name     string
		path     string
		snap     *schema.Snapshot
		wantCode int
	}{
		{name: "by id", path: byID.ID, snap: &byID, wantCode: 204},
		{name: "by name", path: "by-name", snap: &byName, wantCode: 204},
		{name: "escaped team/name:tag (python)", path: url.PathEscape("team/esc:default"), snap: &escaped, wantCode: 204},
		{name: "worker gone", path: gone.ID, snap: &gone, wantCode: 204},
		{name: "unknown", path: "nope", wantCode: 404},
		{name: "built-in template", path: "base", wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := e.do("DELETE", "/templates/"+tt.path, "")
			if resp.code != tt.wantCode {
				t.Fatalf("status %d (%s), want %d", resp.code, resp.body, tt.wantCode)
			}
			if tt.wantCode != 204 {
				resp.errMessage(t)
				return
			}
			if exists(tt.snap.ID) {
				t.Fatalf("snapshot %s still stored", tt.snap.ID)
			}
			e.worker.mu.Lock()
			asked := slices.Contains(e.worker.deleted, tt.snap.ID)
			e.worker.mu.Unlock()
			if want := tt.snap.Worker == fakeWorkerID; asked != want {
				t.Fatalf("worker asked to delete: %v, want %v", asked, want)
			}
			if resp := e.do("DELETE", "/templates/"+tt.path, ""); resp.code != 404 {
				t.Fatalf("second delete: %d, want 404", resp.code)
			}
		})
	}
}

func TestDeleteSnapshotWorkerSilent(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	// The worker has a heartbeat but does not answer (reconnecting): keep the entry, ask for a retry.
	s := schema.Snapshot{ID: schema.NewSandboxID(), Names: []string{"silent"}, Worker: "silent-worker", CreatedAt: time.Now()}
	if err := e.bus.PutSnapshot(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	v := []byte(`{"id":"silent-worker"}`)
	if _, err := e.bus.Workers.Put(t.Context(), "silent-worker", v); err != nil {
		t.Fatal(err)
	}
	resp := e.do("DELETE", "/templates/silent", "")
	if resp.code != 503 || !strings.Contains(resp.errMessage(t), "does not answer") {
		t.Fatalf("status %d %s, want 503", resp.code, resp.body)
	}
	if _, err := e.bus.GetSnapshot(t.Context(), s.ID); err != nil {
		t.Fatalf("entry of a live worker's snapshot deleted: %v", err)
	}
}

func TestCreateFromSnapshot(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	snap := func(worker, name string) schema.Snapshot {
		s := schema.Snapshot{
			ID: schema.NewSandboxID(), SandboxID: schema.NewSandboxID(), TemplateID: "code-interpreter-v1",
			CPUCount: 4, MemoryMB: 2048, DiskSizeMB: 4096, EnvVars: map[string]string{"A": "snap", "B": "snap"},
			Worker: worker, Runtime: "fake", CreatedAt: time.Now().UTC(),
		}
		s.Names = []string{s.ID}
		if name != "" {
			s.Names = []string{name}
		}
		if err := e.bus.PutSnapshot(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	named, unnamed, orphan := snap(fakeWorkerID, "golden"), snap(fakeWorkerID, ""), snap("dead-worker", "orphan")
	tests := []struct {
		name      string
		path      string
		body      string
		snap      schema.Snapshot
		wantCode  int
		wantMsg   string
		wantAlias string
	}{
		{name: "v2 by name", path: "/v2/sandboxes", body: `{"templateID":"golden","envVars":{"B":"req","C":"req"},"metadata":{"k":"v"}}`, snap: named, wantCode: 201, wantAlias: "golden"},
		{name: "v1 by id", path: "/sandboxes", body: fmt.Sprintf(`{"templateID":%q,"timeout":60}`, unnamed.ID), snap: unnamed, wantCode: 201},
		{name: "qualified name", path: "/v2/sandboxes", body: `{"templateID":"team/golden:default"}`, snap: named, wantCode: 201, wantAlias: "golden"},
		{name: "worker gone", path: "/v2/sandboxes", body: `{"templateID":"orphan"}`, snap: orphan, wantCode: 404, wantMsg: `snapshot "orphan" is not available: its worker is gone`},
		{name: "unknown template", path: "/v2/sandboxes", body: `{"templateID":"nope"}`, wantCode: 404, wantMsg: `template "nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := e.do("POST", tt.path, tt.body)
			if resp.code != tt.wantCode {
				t.Fatalf("status %d (%s), want %d", resp.code, resp.body, tt.wantCode)
			}
			if tt.wantCode != 201 {
				if msg := resp.errMessage(t); !strings.Contains(msg, tt.wantMsg) {
					t.Fatalf("message %q, want it to contain %q", msg, tt.wantMsg)
				}
				return
			}
			sbx := decode[e2b.Sandbox](t, resp)
			if sbx.TemplateID != tt.snap.ID || sbx.Alias != tt.wantAlias || sbx.EnvdAccessToken == "" {
				t.Fatalf("sandbox %+v, want templateID %s alias %q and a token", sbx, tt.snap.ID, tt.wantAlias)
			}
			rec := e.record(sbx.SandboxID)
			wantEnv := maps.Clone(tt.snap.EnvVars)
			if strings.Contains(tt.body, "envVars") {
				wantEnv["B"], wantEnv["C"] = "req", "req"
			}
			if rec.State != schema.StateRunning || rec.Worker != fakeWorkerID || rec.Snapshot != tt.snap.ID ||
				rec.TemplateID != tt.snap.TemplateID || rec.CPUCount != 4 || rec.MemoryMB != 2048 || rec.DiskSizeMB != 4096 ||
				!maps.Equal(rec.EnvVars, wantEnv) {
				t.Fatalf("record %+v; want it running on the snapshot's worker with the snapshot's template, size and env %v", rec, wantEnv)
			}
			// Lists and GET show the snapshot as the template too.
			if d := decode[e2b.SandboxDetail](t, e.do("GET", "/sandboxes/"+sbx.SandboxID, "")); d.TemplateID != tt.snap.ID || d.CPUCount != 4 {
				t.Fatalf("detail %+v", d)
			}
		})
	}
}

func TestCreateFromSnapshotFailures(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	s := schema.Snapshot{ID: schema.NewSandboxID(), Names: []string{"full"}, TemplateID: "base", Worker: fakeWorkerID, CreatedAt: time.Now()}
	if err := e.bus.PutSnapshot(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	pending := func() []schema.Record {
		recs, err := e.bus.ListRecords(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	// The worker has no free slot: its 503, and the pending record is ended.
	e.worker.mu.Lock()
	e.worker.createErr = schema.Errorf(http.StatusServiceUnavailable, "worker %s has no free slot", fakeWorkerID)
	e.worker.mu.Unlock()
	resp := e.do("POST", "/v2/sandboxes", `{"templateID":"full"}`)
	if resp.code != 503 || !strings.Contains(resp.errMessage(t), "no free slot") {
		t.Fatalf("status %d %s, want 503", resp.code, resp.body)
	}
	bustest.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		for _, r := range pending() {
			if r.Snapshot == s.ID && r.State != schema.StateFailed {
				return fmt.Errorf("record %s is %s, want failed", r.ID, r.State)
			}
		}
		return nil
	})
	// A worker that is gone but still has a heartbeat (not yet expired): 503, try again later.
	s2 := schema.Snapshot{ID: schema.NewSandboxID(), Names: []string{"silent"}, TemplateID: "base", Worker: "silent-worker", CreatedAt: time.Now()}
	if err := e.bus.PutSnapshot(t.Context(), s2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bus.Workers.Put(t.Context(), "silent-worker", []byte(`{"id":"silent-worker"}`)); err != nil {
		t.Fatal(err)
	}
	resp = e.do("POST", "/v2/sandboxes", `{"templateID":"silent"}`)
	if resp.code != 503 || !strings.Contains(resp.errMessage(t), "does not answer") {
		t.Fatalf("status %d %s, want 503", resp.code, resp.body)
	}
}
