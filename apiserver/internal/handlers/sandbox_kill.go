package handlers

import (
	"net/http"

	"fleetbox.dev/apiserver/internal/httpjson"
)

// killSandbox serves DELETE /sandboxes/{sandboxID}: 204, or 404 when it does not exist (any more).
func (d Deps) killSandbox(w http.ResponseWriter, r *http.Request) {
	id, err := sandboxID(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	if err := d.Sandboxes.Kill(r.Context(), id); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
