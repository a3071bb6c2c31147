package handlers

import (
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/schema"
)

// deleteTemplate serves DELETE /templates/{templateID}, which the SDKs' deleteSnapshot calls: 204 when
// templateID names a snapshot (by id or name) and it is deleted, 404 for anything else (the built-in
// templates cannot be deleted). The Python SDK escapes the whole id (`team/name:tag` is one segment).
func (d Deps) deleteTemplate(w http.ResponseWriter, r *http.Request) {
	ref, err := templateID(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	if err := d.Sandboxes.DeleteSnapshot(r.Context(), ref); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// templateID reads the {templateID} path parameter, unescaping it when the path came escaped (chi then
// routes on the raw path and hands the parameter over still escaped).
func templateID(r *http.Request) (string, error) {
	ref := chi.URLParam(r, "templateID")
	if r.URL.RawPath != "" {
		u, err := url.PathUnescape(ref)
		if err != nil {
			return "", schema.Errorf(http.StatusBadRequest, "invalid template id %q", ref)
		}
		ref = u
	}
	if ref == "" || len(ref) > 256 {
		return "", schema.Errorf(http.StatusBadRequest, "invalid template id %.40q", ref)
	}
	return ref, nil
}
