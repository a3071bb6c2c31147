package handlers

import (
	"net/http"
	"time"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// setTimeout serves POST /sandboxes/{sandboxID}/timeout: the sandbox now ends `timeout` seconds from
// now, sooner or later than before.
func (d Deps) setTimeout(w http.ResponseWriter, r *http.Request) {
	id, err := sandboxID(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	var req e2b.SetTimeout
	if err := httpjson.Decode(w, r, httpjson.MaxBody, &req, true); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	if req.Timeout == nil {
		httpjson.Error(w, d.Log, schema.Errorf(http.StatusBadRequest, "timeout is required"))
		return
	}
	timeout, err := seconds("timeout", *req.Timeout)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	if _, err := d.Sandboxes.SetTimeout(r.Context(), id, timeout, false); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// refresh serves POST /sandboxes/{sandboxID}/refreshes (the v0 SDKs' keep-alive): it extends the
// sandbox to `duration` seconds from now (default 60) and never shortens it.
func (d Deps) refresh(w http.ResponseWriter, r *http.Request) {
	id, err := sandboxID(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	var req e2b.Refresh
	if err := httpjson.Decode(w, r, httpjson.MaxBody, &req, false); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	duration := 60 * time.Second
	if req.Duration != nil {
		if duration, err = seconds("duration", *req.Duration); err != nil {
			httpjson.Error(w, d.Log, err)
			return
		}
	}
	if _, err := d.Sandboxes.SetTimeout(r.Context(), id, duration, true); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// seconds validates a duration given in whole seconds.
func seconds(field string, n int) (time.Duration, error) {
	if n < 0 {
		return 0, schema.Errorf(http.StatusBadRequest, "%s must not be negative, got %d", field, n)
	}
	d := time.Duration(n) * time.Second
	if d > schema.MaxTimeout {
		return 0, schema.Errorf(http.StatusBadRequest, "%s %ds exceeds the maximum of %ds", field, n, int(schema.MaxTimeout.Seconds()))
	}
	return d, nil
}
