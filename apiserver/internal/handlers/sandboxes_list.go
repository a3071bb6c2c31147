package handlers

import (
	"net/http"
	"strconv"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// MaxListLimit is the largest page GET /v2/sandboxes returns, as in E2B.
const MaxListLimit = 100

// listSandboxesV1 serves GET /sandboxes: every running sandbox, optionally filtered by metadata.
func (d Deps) listSandboxesV1(w http.ResponseWriter, r *http.Request) {
	md, err := lifecycle.ParseMetadataQuery(r.URL.Query().Get("metadata"))
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	recs, _, err := d.Sandboxes.List(r.Context(), lifecycle.ListFilter{
		States: map[schema.State]bool{schema.StateRunning: true}, Metadata: md,
	})
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	writeList(w, recs)
}

// listSandboxesV2 serves GET /v2/sandboxes with state and metadata filters and paging.
func (d Deps) listSandboxesV2(w http.ResponseWriter, r *http.Request) {
	f, err := parseListQuery(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	recs, next, err := d.Sandboxes.List(r.Context(), f)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	if next != "" {
		w.Header().Set(e2b.HeaderNextToken, next)
	}
	writeList(w, recs)
}

func parseListQuery(r *http.Request) (lifecycle.ListFilter, error) {
	q := r.URL.Query()
	var f lifecycle.ListFilter
	var err error
	if f.States, err = lifecycle.ParseStates(q.Get("state")); err != nil {
		return f, err
	}
	if f.Metadata, err = lifecycle.ParseMetadataQuery(q.Get("metadata")); err != nil {
		return f, err
	}
	f.Limit = MaxListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			return f, schema.Errorf(http.StatusBadRequest, "limit must be an integer from 1 to %d, got %q", MaxListLimit, v)
		}
		f.Limit = n
	}
	f.Next = q.Get("nextToken")
	return f, nil
}

func writeList(w http.ResponseWriter, recs []schema.Record) {
	out := make([]e2b.ListedSandbox, 0, len(recs))
	for _, rec := range recs {
		out = append(out, toListed(rec))
	}
	httpjson.Write(w, http.StatusOK, out)
}
