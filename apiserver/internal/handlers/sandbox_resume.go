package handlers

import (
	"net/http"
	"time"

	"fleetbox.dev/apiserver/internal/httpjson"
)

// defaultResumeTimeout is the deprecated resume endpoint's default timeout, as in E2B's spec.
const defaultResumeTimeout = 15 * time.Second

// resumeSandbox serves the deprecated POST /sandboxes/{sandboxID}/resume (SDKs 2.0–2.5): a paused
// sandbox runs again and ends `timeout` seconds from now (201 with the Sandbox); a running one is a 409.
// autoPause is accepted but does not change what the sandbox does at its end, which was set at create.
func (d Deps) resumeSandbox(w http.ResponseWriter, r *http.Request) {
	id, err := sandboxID(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	var req ResumedSandbox
	if err := httpjson.Decode(w, r, httpjson.MaxBody, &req, false); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	timeout := defaultResumeTimeout
	if req.Timeout != nil {
		if timeout, err = seconds("timeout", *req.Timeout); err != nil {
			httpjson.Error(w, d.Log, err)
			return
		}
	}
	rec, err := d.Sandboxes.Resume(r.Context(), id, timeout)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, toSandbox(rec))
}
