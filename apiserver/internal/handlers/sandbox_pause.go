package handlers

import (
	"net/http"

	"fleetbox.dev/apiserver/internal/httpjson"
)

// pauseSandbox serves POST /sandboxes/{sandboxID}/pause: 204 once the sandbox is paused in place, 409
// if it already was (the SDKs then return false), 404 if it does not exist (any more).
func (d Deps) pauseSandbox(w http.ResponseWriter, r *http.Request) {
	id, err := sandboxID(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	var req PauseSandbox
	if err := httpjson.Decode(w, r, httpjson.MaxBody, &req, false); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	if _, err := d.Sandboxes.Pause(r.Context(), id); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
