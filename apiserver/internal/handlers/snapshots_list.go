package handlers

import (
	"net/http"
	"strconv"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// listSnapshots serves GET /snapshots (?sandboxID=&name=&limit=&nextToken=): newest first, at most
// `limit` (default and maximum 100) per page, the next page's cursor in X-Next-Token.
func (d Deps) listSnapshots(w http.ResponseWriter, r *http.Request) {
	f, err := parseSnapshotQuery(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	snaps, next, err := d.Sandboxes.ListSnapshots(r.Context(), f)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	if next != "" {
		w.Header().Set(e2b.HeaderNextToken, next)
	}
	out := make([]SnapshotInfo, 0, len(snaps))
	for _, s := range snaps {
		out = append(out, toSnapshotInfo(s))
	}
	httpjson.Write(w, http.StatusOK, out)
}

func parseSnapshotQuery(r *http.Request) (lifecycle.SnapshotFilter, error) {
	q := r.URL.Query()
	f := lifecycle.SnapshotFilter{SandboxID: q.Get("sandboxID"), Name: q.Get("name"), Next: q.Get("nextToken"), Limit: MaxListLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			return f, schema.Errorf(http.StatusBadRequest, "limit must be an integer from 1 to %d, got %q", MaxListLimit, v)
		}
		f.Limit = n
	}
	return f, nil
}
