package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

func TestEgressOf(t *testing.T) {
	t.Parallel()
	f, tr := false, true
	for _, tt := range []struct {
		name     string
		internet *bool
		network  *e2b.NetworkConfig
		want     *schema.Egress
		wantCode int
	}{
		{name: "nothing asked"},
		{name: "internet on", internet: &tr, want: &schema.Egress{AllowAll: true}},
		{name: "internet off", internet: &f, want: &schema.Egress{}},
		{name: "off with exceptions", internet: &f, network: &e2b.NetworkConfig{AllowOut: []string{"1.1.1.1"}}, want: &schema.Egress{Allow: []string{"1.1.1.1"}}},
		{name: "deny list", network: &e2b.NetworkConfig{DenyOut: []string{"10.0.0.0/8"}}, want: &schema.Egress{AllowAll: true, Deny: []string{"10.0.0.0/8"}}},
		{name: "domain", network: &e2b.NetworkConfig{AllowOut: []string{"example.com"}}, wantCode: 400},
		{name: "proxy", network: &e2b.NetworkConfig{EgressProxy: json.RawMessage(`{"address":"p:1"}`)}, wantCode: 400},
		{name: "null proxy", network: &e2b.NetworkConfig{EgressProxy: json.RawMessage(`null`)}},
	} {
		got, err := egressOf(tt.internet, tt.network)
		if tt.wantCode != 0 {
			if schema.CodeOf(err) != tt.wantCode {
				t.Errorf("%s: %v, want %d", tt.name, err, tt.wantCode)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestSetNetwork(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	got := make(chan schema.Egress, 1)
	bus.Handle(e.worker.ops, schema.OpNetwork, func(ctx context.Context, id string, req schema.NetworkRequest) (schema.Record, error) {
		got <- req.Egress
		rec, _, err := e.worker.bus.UpdateRecord(ctx, id, func(r schema.Record) (schema.Record, error) {
			eg := req.Egress
			r.Egress = &eg
			return r, nil
		})
		return rec, err
	})
	rec := e.running(true)
	resp := e.do(http.MethodPut, "/sandboxes/"+rec.ID+"/network", `{"allow_internet_access":false,"allowOut":["1.1.1.1","10.0.0.0/8"]}`)
	if resp.code != http.StatusNoContent {
		t.Fatalf("PUT network: %d %s", resp.code, resp.body)
	}
	if eg := <-got; eg.AllowAll || !reflect.DeepEqual(eg.Allow, []string{"1.1.1.1", "10.0.0.0/8"}) {
		t.Fatalf("worker got %+v", eg)
	}
	var detail e2b.SandboxDetail
	if resp := e.do(http.MethodGet, "/sandboxes/"+rec.ID, ""); json.Unmarshal(resp.body, &detail) != nil || detail.Network == nil || len(detail.Network.AllowOut) != 2 {
		t.Fatalf("detail after PUT network: %s", resp.body)
	}
	for body, code := range map[string]int{
		`{"allowOut":["*.example.com"]}`: 400,
		`{"rules":{"x":[]}}`:             400,
		`{"allowOut":"1.1.1.1"}`:         400,
		`{}`:                             204, // omitted fields clear: everything allowed
	} {
		if resp := e.do(http.MethodPut, "/sandboxes/"+rec.ID+"/network", body); resp.code != code {
			t.Errorf("PUT network %s: %d %s, want %d", body, resp.code, resp.body, code)
		}
	}
	if eg := <-got; !eg.AllowAll || len(eg.Allow)+len(eg.Deny) != 0 {
		t.Errorf("cleared policy %+v", eg)
	}
	if resp := e.do(http.MethodPut, "/sandboxes/"+schema.NewSandboxID()+"/network", `{}`); resp.code != 404 {
		t.Errorf("PUT network of an unknown sandbox: %d", resp.code)
	}
}

// A create that asks for a network policy needs a worker whose runtime enforces one: without, a clear
// 501 at once; with one, the create is queued for it.
func TestCreateWithNetworkPolicyNeedsAnEnforcingWorker(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.svc.CreateTimeout = 300 * time.Millisecond
	body := `{"templateID":"base","allow_internet_access":false}`
	resp := e.do(http.MethodPost, "/v2/sandboxes", body)
	if resp.code != http.StatusNotImplemented || !strings.Contains(resp.errMessage(t), "jail runtime") {
		t.Fatalf("create with no enforcing worker: %d %s", resp.code, resp.body)
	}
	// Unrestricted creates are not affected (nobody claims them here: 503 after the create timeout).
	if resp := e.do(http.MethodPost, "/v2/sandboxes", `{"templateID":"base","allow_internet_access":true}`); resp.code != http.StatusServiceUnavailable {
		t.Fatalf("unrestricted create: %d %s", resp.code, resp.body)
	}
	info, _ := json.Marshal(schema.WorkerInfo{ID: "jail-worker", Runtime: "jail", Egress: true})
	if _, err := e.bus.Workers.Put(t.Context(), "jail-worker", info); err != nil {
		t.Fatal(err)
	}
	if resp := e.do(http.MethodPost, "/v2/sandboxes", body); resp.code != http.StatusServiceUnavailable {
		t.Fatalf("create with an enforcing worker (that never claims it): %d %s, want the create timeout's 503", resp.code, resp.body)
	}
}
