package handlers

import (
	"net/http"

	"fleetbox.dev/apiserver/internal/httpjson"
)

// getSandbox serves GET /sandboxes/{sandboxID}.
func (d Deps) getSandbox(w http.ResponseWriter, r *http.Request) {
	id, err := sandboxID(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	rec, err := d.Sandboxes.Get(r.Context(), id)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	httpjson.Write(w, http.StatusOK, toDetail(rec))
}
