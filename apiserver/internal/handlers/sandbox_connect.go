package handlers

import (
	"net/http"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// connectSandbox serves POST /sandboxes/{id}/connect (timeout required) and the /v2 variant (optional,
// default 300): a paused sandbox is resumed and ends `timeout` seconds from now (201); a running one
// answers 200 and its end is extended, never shortened.
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
		p := lifecycle.ConnectParams{Timeout: timeout, KeepMemory: req.Memory == nil || *req.Memory}
		rec, resumed, err := d.Sandboxes.Connect(r.Context(), id, p)
		if err != nil {
			httpjson.Error(w, d.Log, err)
			return
		}
		status := http.StatusOK
		if resumed {
			status = http.StatusCreated
		}
		httpjson.Write(w, status, toSandbox(rec))
	}
}
