package handlers

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/schema"
)

// SandboxMetric is E2B's SandboxMetric: every field is required by the Python SDK.
type SandboxMetric struct {
	Timestamp     string  `json:"timestamp"`
	TimestampUnix int64   `json:"timestampUnix"`
	CPUCount      int     `json:"cpuCount"`
	CPUUsedPct    float64 `json:"cpuUsedPct"`
	MemUsed       int64   `json:"memUsed"`
	MemTotal      int64   `json:"memTotal"`
	MemCache      int64   `json:"memCache"`
	DiskUsed      int64   `json:"diskUsed"`
	DiskTotal     int64   `json:"diskTotal"`
}

func toMetric(m schema.Metric) SandboxMetric {
	return SandboxMetric{
		Timestamp: m.Timestamp.UTC().Format(time.RFC3339Nano), TimestampUnix: m.Timestamp.Unix(),
		CPUCount: m.CPUCount, CPUUsedPct: m.CPUUsedPct, MemUsed: m.MemUsed, MemTotal: m.MemTotal,
		MemCache: m.MemCache, DiskUsed: m.DiskUsed, DiskTotal: m.DiskTotal,
	}
}

// maxMetricsIDs bounds the sandboxes one GET /sandboxes/metrics asks about.
const maxMetricsIDs = 100

// sandboxMetrics serves GET /sandboxes/{sandboxID}/metrics?start=&end= (unix seconds): the usage samples
// of the sandbox in that window, oldest first, the newest taken by this request.
func (d Deps) sandboxMetrics(w http.ResponseWriter, r *http.Request) {
	id, err := sandboxID(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	start, err := unixParam(r, "start")
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	end, err := unixParam(r, "end")
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	ms, err := d.Sandboxes.Metrics(r.Context(), id, start, end)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	out := make([]SandboxMetric, 0, len(ms))
	for _, m := range ms {
		out = append(out, toMetric(m))
	}
	httpjson.Write(w, http.StatusOK, out)
}

// sandboxesMetrics serves GET /sandboxes/metrics?sandbox_ids=a,b: the newest sample of each live sandbox
// named, as {"sandboxes": {id: metric}}.
func (d Deps) sandboxesMetrics(w http.ResponseWriter, r *http.Request) {
	var ids []string
	for _, v := range r.URL.Query()["sandbox_ids"] {
		for id := range strings.SplitSeq(v, ",") {
			if id = strings.TrimSpace(id); id == "" {
				continue
			}
			if !schema.ValidSandboxID(id) {
				httpjson.Error(w, d.Log, schema.Errorf(http.StatusBadRequest, "invalid sandbox id %q", id))
				return
			}
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		httpjson.Error(w, d.Log, schema.Errorf(http.StatusBadRequest, "sandbox_ids is required"))
		return
	}
	if len(ids) > maxMetricsIDs {
		httpjson.Error(w, d.Log, schema.Errorf(http.StatusBadRequest, "at most %d sandbox_ids per request, got %d", maxMetricsIDs, len(ids)))
		return
	}
	out := map[string]SandboxMetric{}
	for id, m := range d.Sandboxes.LatestMetrics(r.Context(), ids) {
		out[id] = toMetric(m)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"sandboxes": out})
}

// unixParam reads an optional query parameter of unix seconds.
func unixParam(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, schema.Errorf(http.StatusBadRequest, "%s must be unix seconds, got %q", name, v)
	}
	return time.Unix(n, 0), nil
}
