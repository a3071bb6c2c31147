package handlers

import (
	"net/http"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/schema"
)

// createSnapshot serves POST /sandboxes/{sandboxID}/snapshots: 201 with the new snapshot's id and names,
// 404 for a sandbox that does not exist (any more), 409 for a name another snapshot has. Snapshots keep
// the sandbox's files, not its processes: `memory: true` is refused rather than quietly not honoured.
func (d Deps) createSnapshot(w http.ResponseWriter, r *http.Request) {
	id, err := sandboxID(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	var req NewSnapshot
	if err := httpjson.Decode(w, r, httpjson.MaxBody, &req, false); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	if req.Memory != nil && *req.Memory {
		httpjson.Error(w, d.Log, schema.Errorf(http.StatusBadRequest,
			"snapshots keep the sandbox's file system only, not its memory: omit memory or create the snapshot with mode filesystem"))
		return
	}
	name := ""
	if req.Name != nil {
		name = *req.Name
	}
	snap, err := d.Sandboxes.CreateSnapshot(r.Context(), id, name)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, toSnapshotInfo(snap))
}

func toSnapshotInfo(s schema.Snapshot) SnapshotInfo {
	names := s.Names
	if names == nil {
		names = []string{}
	}
	return SnapshotInfo{SnapshotID: s.ID, Names: names}
}
