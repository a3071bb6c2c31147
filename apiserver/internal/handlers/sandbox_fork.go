package handlers

import (
	"net/http"
	"time"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// ForkSandbox is the body of POST /sandboxes/{id}/fork: the forks' timeout (seconds, default 300) and how
// many (default 1).
type ForkSandbox struct {
	Timeout *int `json:"timeout,omitempty"`
	Count   *int `json:"count,omitempty"`
}

// ForkResult is one entry of the fork's answer: exactly one of Sandbox and Error is set.
type ForkResult struct {
	Sandbox *e2b.Sandbox  `json:"sandbox,omitempty"`
	Error   *schema.Error `json:"error,omitempty"`
}

// forkSandbox serves POST /sandboxes/{sandboxID}/fork: 201 with one result per fork.
func (d Deps) forkSandbox(w http.ResponseWriter, r *http.Request) {
	id, err := sandboxID(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	var req ForkSandbox
	if err := httpjson.Decode(w, r, httpjson.MaxBody, &req, false); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	timeout, count := schema.DefaultTimeout, 1
	if req.Timeout != nil {
		if *req.Timeout <= 0 || time.Duration(*req.Timeout)*time.Second > schema.MaxTimeout {
			httpjson.Error(w, d.Log, schema.Errorf(http.StatusBadRequest, "timeout must be 1 to %d seconds, got %d", int(schema.MaxTimeout.Seconds()), *req.Timeout))
			return
		}
		timeout = time.Duration(*req.Timeout) * time.Second
	}
	if req.Count != nil {
		count = *req.Count
	}
	results, err := d.Sandboxes.Fork(r.Context(), id, timeout, count)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	out := make([]ForkResult, len(results))
	for i, res := range results {
		if res.Err != nil {
			out[i].Error = httpjson.AsError(res.Err)
			continue
		}
		sbx := toSandbox(res.Record)
		out[i].Sandbox = &sbx
	}
	httpjson.Write(w, http.StatusCreated, out)
}
