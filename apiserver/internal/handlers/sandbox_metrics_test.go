package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

func TestSandboxMetrics(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	bus.Handle(e.worker.ops, schema.OpMetrics, func(_ context.Context, id string, _ schema.MetricsRequest) ([]schema.Metric, error) {
		var ms []schema.Metric
		for i := range 3 { // samples 10 minutes apart
			ms = append(ms, schema.Metric{Timestamp: base.Add(time.Duration(i) * 10 * time.Minute), CPUCount: 2, CPUUsedPct: 12.5, MemUsed: int64(i+1) << 20, MemTotal: 512 << 20, DiskUsed: 4096, DiskTotal: 1 << 30})
		}
		return ms, nil
	})
	rec := e.running(true)
	other := e.running(true)
	gone := e.running(false, func(r *schema.Record) { r.State = schema.StateKilled })

	for _, tt := range []struct {
		query    string
		wantCode int
		wantN    int
	}{
		{"", 200, 3},
		{fmt.Sprintf("?start=%d", base.Add(5*time.Minute).Unix()), 200, 2},
		{fmt.Sprintf("?start=%d&end=%d", base.Unix(), base.Add(10*time.Minute).Unix()), 200, 2},
		{fmt.Sprintf("?end=%d", base.Add(-time.Minute).Unix()), 200, 0},
		{"?start=yesterday", 400, 0},
	} {
		resp := e.do(http.MethodGet, "/sandboxes/"+rec.ID+"/metrics"+tt.query, "")
		if resp.code != tt.wantCode {
			t.Fatalf("metrics%s: %d %s", tt.query, resp.code, resp.body)
		}
		if tt.wantCode != 200 {
			resp.errMessage(t)
			continue
		}
		var got []map[string]any
		if err := json.Unmarshal(resp.body, &got); err != nil || len(got) != tt.wantN {
			t.Fatalf("metrics%s: %s, want %d samples", tt.query, resp.body, tt.wantN)
		}
		for _, m := range got { // every field the Python SDK requires
			for _, k := range []string{"timestamp", "timestampUnix", "cpuCount", "cpuUsedPct", "memUsed", "memTotal", "memCache", "diskUsed", "diskTotal"} {
				if _, ok := m[k]; !ok {
					t.Fatalf("sample without %s: %v", k, m)
				}
			}
		}
	}
	if resp := e.do(http.MethodGet, "/sandboxes/"+gone.ID+"/metrics", ""); resp.code != 404 {
		t.Fatalf("metrics of a killed sandbox: %d", resp.code)
	}

	resp := e.do(http.MethodGet, "/sandboxes/metrics?sandbox_ids="+rec.ID+","+other.ID+","+gone.ID, "")
	var many struct {
		Sandboxes map[string]struct {
			MemUsed int64 `json:"memUsed"`
		} `json:"sandboxes"`
	}
	if resp.code != 200 || json.Unmarshal(resp.body, &many) != nil || len(many.Sandboxes) != 2 || many.Sandboxes[rec.ID].MemUsed != 3<<20 {
		t.Fatalf("metrics of many: %d %s", resp.code, resp.body)
	}
	for _, q := range []string{"", "?sandbox_ids=", "?sandbox_ids=Not.An.Id"} {
		if resp := e.do(http.MethodGet, "/sandboxes/metrics"+q, ""); resp.code != 400 {
			t.Fatalf("metrics%s: %d", q, resp.code)
		}
	}
}
