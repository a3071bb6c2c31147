package handlers

import (
	"net/http"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// connectSandbox serves POST /sandboxes/{id}/connect (timeout required) and the /v2 variant (optional,
// default 300): a running sandbox answers 200 and its end is extended, never shortened.
func (d Deps) connectSandbox(v2 bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := sandboxID(r)
		if err != nil {
			httpjson.Error(w, d.Log, err)
			return
		}
		var req e2b.ConnectSandbox
		if err := httpjson.Decode(w, r, httpjson.MaxBody, &req, !v2); err != nil {
			httpjson.Error(w, d.Log, err)
			return
		}
		timeout := schema.DefaultTimeout
		if req.Timeout != nil {
			if timeout, err = seconds("timeout", *req.Timeout); err != nil {
				httpjson.Error(w, d.Log, err)
				return
			}
		} else if !v2 {
			httpjson.Error(w, d.Log, schema.Errorf(http.StatusBadRequest, "timeout is required"))
			return
		}
		rec, err := d.Sandboxes.SetTimeout(r.Context(), id, timeout, true)
		if err != nil {
			httpjson.Error(w, d.Log, err)
			return
		}
		httpjson.Write(w, http.StatusOK, toSandbox(rec))
	}
}
