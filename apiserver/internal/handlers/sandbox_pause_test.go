package handlers

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

func TestPause(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	paused := func(r *schema.Record) { r.State, r.PausedAt = schema.StatePaused, time.Now().UTC() }
	tests := []struct {
		name     string
		id       func() string
		body     string
		wantCode int
		wantMsg  string
	}{
		{name: "running, no body", id: func() string { return e.running(true).ID }, wantCode: 204},
		{name: "running, js body", id: func() string { return e.running(true).ID }, body: `{}`, wantCode: 204},
		{name: "running, python body", id: func() string { return e.running(true).ID }, body: `{"memory":true,"requireHealthyGuest":true}`, wantCode: 204},
		{name: "file system only accepted", id: func() string { return e.running(true).ID }, body: `{"memory":false}`, wantCode: 204},
		{name: "already paused", id: func() string { return e.running(true, paused).ID }, wantCode: 409, wantMsg: "already paused"},
		{name: "unknown", id: func() string { return schema.NewSandboxID() }, wantCode: 404, wantMsg: "not found"},
		{name: "killed", id: func() string {
			return e.running(false, func(r *schema.Record) { r.State, r.Reason = schema.StateKilled, schema.ReasonTimeout }).ID
		}, wantCode: 404, wantMsg: "timeout reached"},
		{name: "being killed", id: func() string { return e.running(true, func(r *schema.Record) { r.State = schema.StateKilling }).ID }, wantCode: 404},
		{name: "bad body", id: func() string { return e.running(true).ID }, body: `{"memory":"yes"}`, wantCode: 400, wantMsg: "memory"},
		{name: "owner does not answer", id: func() string { return e.running(false).ID }, wantCode: 503, wantMsg: "does not answer"},
		{name: "invalid id", id: func() string { return "NOT-AN-ID" }, wantCode: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := tt.id()
			resp := e.do("POST", "/sandboxes/"+id+"/pause", tt.body)
			if resp.code != tt.wantCode {
				t.Fatalf("status %d (%s), want %d", resp.code, resp.body, tt.wantCode)
			}
			if tt.wantCode == 204 {
				if len(resp.body) != 0 {
					t.Fatalf("204 with body %q", resp.body)
				}
				rec := e.record(id)
				if rec.State != schema.StatePaused || rec.PausedAt.IsZero() {
					t.Fatalf("after pause: %s, pausedAt %v", rec.State, rec.PausedAt)
				}
				// The worker's retention applies (the apiserver asks for no end).
				if d := time.Until(rec.EndAt); d < pausedRetain-time.Minute {
					t.Fatalf("paused sandbox ends in %v, want the worker's retention %v", d, pausedRetain)
				}
				return
			}
			if msg := resp.errMessage(t); !strings.Contains(msg, tt.wantMsg) {
				t.Fatalf("message %q, want it to contain %q", msg, tt.wantMsg)
			}
		})
	}
}

func TestPauseWorkerErrors(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	// A runtime that cannot pause: the worker's 501 reaches the client as is.
	e.worker.setHook(schema.OpPause, func(context.Context, string) error {
		return schema.Errorf(http.StatusNotImplemented, "the process runtime cannot pause sandboxes")
	})
	resp := e.do("POST", "/sandboxes/"+e.running(true).ID+"/pause", "")
	if resp.code != 501 || !strings.Contains(resp.errMessage(t), "cannot pause") {
		t.Fatalf("status %d %s, want 501", resp.code, resp.body)
	}
	// A worker slower than the operation timeout: 504, not a hung request.
	e.worker.setHook(schema.OpPause, nil)
	e.worker.mu.Lock()
	e.worker.delay = testOpTimeout + time.Second
	e.worker.mu.Unlock()
	resp = e.do("POST", "/sandboxes/"+e.running(true).ID+"/pause", "")
	if resp.code != 504 || !strings.Contains(resp.errMessage(t), "did not finish pause") {
		t.Fatalf("status %d %s, want 504", resp.code, resp.body)
	}
}

func TestConnectAndResume(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	paused := func(r *schema.Record) {
		r.State, r.PausedAt, r.EndAt = schema.StatePaused, time.Now().UTC(), time.Now().Add(pausedRetain).UTC()
	}
	soon := func(r *schema.Record) { r.EndAt = time.Now().Add(time.Minute).UTC() }
	late := func(r *schema.Record) { r.EndAt = time.Now().Add(time.Hour).UTC() }
	tests := []struct {
		name     string
		path     string // %s is the sandbox id
		body     string
		rec      []func(*schema.Record)
		serve    bool
		wantCode int
		wantMsg  string
		wantEnd  time.Duration // from now, ±5 s; 0: unchecked
	}{
		{name: "v2 connect resumes paused", path: "/v2/sandboxes/%s/connect", body: `{}`, rec: []func(*schema.Record){paused}, serve: true, wantCode: 201, wantEnd: schema.DefaultTimeout},
		{name: "v2 connect without body", path: "/v2/sandboxes/%s/connect", rec: []func(*schema.Record){paused}, serve: true, wantCode: 201, wantEnd: schema.DefaultTimeout},
		{name: "v1 connect resumes paused", path: "/sandboxes/%s/connect", body: `{"timeout":120}`, rec: []func(*schema.Record){paused}, serve: true, wantCode: 201, wantEnd: 2 * time.Minute},
		{name: "v2 connect extends running", path: "/v2/sandboxes/%s/connect", body: `{"timeout":600}`, rec: []func(*schema.Record){soon}, serve: true, wantCode: 200, wantEnd: 10 * time.Minute},
		{name: "v2 connect never shortens", path: "/v2/sandboxes/%s/connect", body: `{"timeout":60}`, rec: []func(*schema.Record){late}, serve: true, wantCode: 200, wantEnd: time.Hour},
		{name: "reboot of paused refused", path: "/v2/sandboxes/%s/connect", body: `{"memory":false}`, rec: []func(*schema.Record){paused}, serve: true, wantCode: 400, wantMsg: "memory"},
		{name: "reboot of running is a no-op", path: "/v2/sandboxes/%s/connect", body: `{"memory":false}`, serve: true, wantCode: 200},
		{name: "v1 connect needs timeout", path: "/sandboxes/%s/connect", body: `{}`, rec: []func(*schema.Record){paused}, serve: true, wantCode: 400, wantMsg: "timeout"},
		{name: "connect to a killed one", path: "/v2/sandboxes/%s/connect", body: `{}`, rec: []func(*schema.Record){func(r *schema.Record) { r.State = schema.StateKilled }}, wantCode: 404},
		{name: "connect, owner gone", path: "/v2/sandboxes/%s/connect", body: `{}`, rec: []func(*schema.Record){paused}, wantCode: 503},
		{name: "resume paused, default 15 s", path: "/sandboxes/%s/resume", body: `{}`, rec: []func(*schema.Record){paused}, serve: true, wantCode: 201, wantEnd: 15 * time.Second},
		{name: "resume paused with timeout", path: "/sandboxes/%s/resume", body: `{"timeout":90,"autoPause":true}`, rec: []func(*schema.Record){paused}, serve: true, wantCode: 201, wantEnd: 90 * time.Second},
		{name: "resume running", path: "/sandboxes/%s/resume", body: `{"timeout":90}`, serve: true, wantCode: 409, wantMsg: "already running"},
		{name: "resume bad timeout", path: "/sandboxes/%s/resume", body: `{"timeout":-1}`, rec: []func(*schema.Record){paused}, serve: true, wantCode: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := e.running(tt.serve, tt.rec...)
			resp := e.do("POST", strings.Replace(tt.path, "%s", rec.ID, 1), tt.body)
			if resp.code != tt.wantCode {
				t.Fatalf("status %d (%s), want %d", resp.code, resp.body, tt.wantCode)
			}
			if tt.wantCode >= 300 {
				if msg := resp.errMessage(t); !strings.Contains(msg, tt.wantMsg) {
					t.Fatalf("message %q, want it to contain %q", msg, tt.wantMsg)
				}
				return
			}
			sbx := decode[e2b.Sandbox](t, resp)
			if sbx.SandboxID != rec.ID || sbx.TemplateID != "base" || sbx.EnvdVersion == "" || sbx.ClientID == "" {
				t.Fatalf("sandbox %+v", sbx)
			}
			got := e.record(rec.ID)
			if got.State != schema.StateRunning || !got.PausedAt.IsZero() {
				t.Fatalf("after connect: %s (pausedAt %v)", got.State, got.PausedAt)
			}
			if tt.wantEnd != 0 {
				if d := time.Until(got.EndAt) - tt.wantEnd; d < -5*time.Second || d > 5*time.Second {
					t.Fatalf("ends in %v, want %v", time.Until(got.EndAt), tt.wantEnd)
				}
			}
		})
	}
}

func TestPausedInListAndGet(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	tag := schema.NewSandboxID()
	md := func(r *schema.Record) { r.Metadata = map[string]string{"tag": tag} }
	run := e.running(true, md)
	pau := e.running(true, md, func(r *schema.Record) { r.State = schema.StatePaused })

	ids := func(path string) []string {
		t.Helper()
		resp := e.do("GET", path+"metadata=tag%3D"+tag, "")
		if resp.code != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.code, resp.body)
		}
		var out []string
		for _, s := range decode[[]e2b.ListedSandbox](t, resp) {
			out = append(out, s.SandboxID+"="+s.State)
		}
		slices.Sort(out)
		return out
	}
	both := []string{run.ID + "=running", pau.ID + "=paused"}
	slices.Sort(both)
	for path, want := range map[string][]string{
		"/v2/sandboxes?":                      both,
		"/v2/sandboxes?state=running,paused&": both,
		"/v2/sandboxes?state=paused&":         {pau.ID + "=paused"},
		"/v2/sandboxes?state=running&":        {run.ID + "=running"},
		"/sandboxes?":                         {run.ID + "=running"}, // v1 lists running sandboxes only, as E2B's
	} {
		if got := ids(path); !slices.Equal(got, want) {
			t.Errorf("GET %s: %v, want %v", path, got, want)
		}
	}
	resp := e.do("GET", "/sandboxes/"+pau.ID, "")
	if d := decode[e2b.SandboxDetail](t, resp); resp.code != 200 || d.State != "paused" {
		t.Fatalf("GET paused: %d %s", resp.code, resp.body)
	}
}

// Connect races: another client resumes the sandbox between our read and our resume (the worker says
// 409 "not paused": extend it as a running one, 200), or pauses it between our read and the timeout
// change (the worker's reply says paused: resume it after all, 201).
func TestConnectRaces(t *testing.T) {
	t.Parallel()
	t.Run("resumed meanwhile", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		rec := e.running(true, func(r *schema.Record) { r.State = schema.StatePaused })
		e.worker.setHook(schema.OpResume, func(ctx context.Context, id string) error {
			if _, err := e.worker.update(ctx, id, schema.StatePaused, "not paused", func(r *schema.Record) { r.State = schema.StateRunning }); err != nil {
				return err
			}
			return schema.Errorf(http.StatusConflict, "sandbox %s is not paused", id)
		})
		resp := e.do("POST", "/v2/sandboxes/"+rec.ID+"/connect", `{"timeout":900}`)
		if resp.code != 200 {
			t.Fatalf("status %d %s, want 200", resp.code, resp.body)
		}
		if got := e.record(rec.ID); got.State != schema.StateRunning || time.Until(got.EndAt) < 14*time.Minute {
			t.Fatalf("record %s ending in %v, want running for 15 min", got.State, time.Until(got.EndAt))
		}
	})
	t.Run("paused meanwhile", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		rec := e.running(true)
		e.worker.setHook(schema.OpTimeout, func(ctx context.Context, id string) error {
			_, err := e.worker.update(ctx, id, schema.StateRunning, "paused", func(r *schema.Record) { r.State = schema.StatePaused })
			return err
		})
		resp := e.do("POST", "/v2/sandboxes/"+rec.ID+"/connect", `{}`)
		if resp.code != 201 {
			t.Fatalf("status %d %s, want 201", resp.code, resp.body)
		}
		if got := e.record(rec.ID); got.State != schema.StateRunning {
			t.Fatalf("record %s, want running", got.State)
		}
	})
}
