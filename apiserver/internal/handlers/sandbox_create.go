package handlers

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// createSandbox serves POST /sandboxes and POST /v2/sandboxes (always secured).
func (d Deps) createSandbox(v2 bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req e2b.NewSandbox
		if err := httpjson.Decode(w, r, httpjson.MaxBody, &req, true); err != nil {
			httpjson.Error(w, d.Log, err)
			return
		}
		params, err := validateCreate(req, v2)
		if err != nil {
			httpjson.Error(w, d.Log, err)
			return
		}
		rec, err := d.Sandboxes.Create(r.Context(), params)
		if err != nil {
			httpjson.Error(w, d.Log, err)
			return
		}
		httpjson.Write(w, http.StatusCreated, toSandbox(rec))
	}
}

// validateCreate turns a create body into lifecycle parameters, or a 4xx error naming the problem.
// Template is left zero when templateID is no built-in template (it may name a snapshot).
func validateCreate(req e2b.NewSandbox, v2 bool) (lifecycle.CreateParams, error) {
	var p lifecycle.CreateParams
	if strings.TrimSpace(req.TemplateID) == "" {
		return p, schema.Errorf(http.StatusBadRequest, "templateID is required")
	}
	if len(req.TemplateID) > 256 {
		return p, schema.Errorf(http.StatusBadRequest, "templateID %.40q is too long", req.TemplateID)
	}
	// A reference that is no built-in template may name a snapshot: the lifecycle layer looks it up.
	tmpl, _ := schema.LookupTemplate(req.TemplateID)
	timeout := schema.DefaultTimeout
	if req.Timeout != nil {
		if *req.Timeout <= 0 {
			return p, schema.Errorf(http.StatusBadRequest, "timeout must be a positive number of seconds, got %d", *req.Timeout)
		}
		timeout = time.Duration(*req.Timeout) * time.Second
		if timeout > schema.MaxTimeout {
			return p, schema.Errorf(http.StatusBadRequest, "timeout %ds exceeds the maximum of %ds", *req.Timeout, int(schema.MaxTimeout.Seconds()))
		}
	}
	if err := validateMap("metadata", req.Metadata); err != nil {
		return p, err
	}
	if err := validateMap("envVars", req.EnvVars); err != nil {
		return p, err
	}
	for k := range req.EnvVars {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return p, schema.Errorf(http.StatusBadRequest, "invalid environment variable name %q", k)
		}
	}
	autoResume, err := parseAutoResume(req.AutoResume)
	if err != nil {
		return p, err
	}
	egress, err := egressOf(req.AllowInternetAccess, req.Network)
	if err != nil {
		return p, err
	}
	autoPause := req.AutoPause != nil && *req.AutoPause
	if autoResume && !autoPause {
		return p, schema.Errorf(http.StatusBadRequest, "autoResume needs autoPause: a sandbox that is killed at its timeout cannot be resumed")
	}
	p = lifecycle.CreateParams{
		Template:      tmpl,
		TemplateRef:   req.TemplateID,
		Timeout:       timeout,
		Secure:        v2 || req.Secure == nil || *req.Secure,
		Metadata:      req.Metadata,
		EnvVars:       req.EnvVars,
		AutoPause:     autoPause,
		AutoResume:    autoResume,
		AllowInternet: req.AllowInternetAccess,
		Egress:        egress,
	}
	return p, nil
}

// parseAutoResume reads E2B's autoResume, {"enabled": bool} (null or absent: off).
func parseAutoResume(raw json.RawMessage) (bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil
	}
	var v struct {
		Enabled *bool `json:"enabled"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, schema.Errorf(http.StatusBadRequest, "autoResume must be {\"enabled\": true|false}: %v", err)
	}
	return v.Enabled != nil && *v.Enabled, nil
}

const (
	maxMapEntries = 256
	maxMapValue   = 64 << 10
)

func validateMap(name string, m map[string]string) error {
	if len(m) > maxMapEntries {
		return schema.Errorf(http.StatusBadRequest, "%s has %d entries; at most %d are allowed", name, len(m), maxMapEntries)
	}
	for k, v := range m {
		if len(k) > 256 || len(v) > maxMapValue {
			return schema.Errorf(http.StatusBadRequest, "%s entry %.40q is too long", name, k)
		}
		if strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			return schema.Errorf(http.StatusBadRequest, "%s entry %.40q contains a NUL byte", name, k)
		}
	}
	return nil
}
