package handlers

import (
	"net/http"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// setNetwork serves PUT /sandboxes/{sandboxID}/network: the sandbox's egress policy is replaced, live
// (omitted fields clear, as in E2B). 204; 501 where the worker's runtime cannot enforce a policy.
func (d Deps) setNetwork(w http.ResponseWriter, r *http.Request) {
	id, err := sandboxID(r)
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	var req e2b.NetworkUpdate
	if err := httpjson.Decode(w, r, httpjson.MaxBody, &req, true); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	if len(req.EgressProxy) > 0 && string(req.EgressProxy) != "null" || len(req.Rules) > 0 && string(req.Rules) != "null" {
		httpjson.Error(w, d.Log, schema.Errorf(http.StatusBadRequest, "egressProxy and rules are not supported; allowOut, denyOut and allow_internet_access are"))
		return
	}
	egress, err := egressOf(req.AllowInternetAccess, &e2b.NetworkConfig{AllowOut: req.AllowOut, DenyOut: req.DenyOut})
	if err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	if egress == nil { // omitted fields clear: everything allowed
		egress = &schema.Egress{AllowAll: true}
	}
	if _, err := d.Sandboxes.SetNetwork(r.Context(), id, *egress); err != nil {
		httpjson.Error(w, d.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// egressOf is the egress policy of allow_internet_access and a network config: every destination but
// denyOut unless internet access is off, allowOut always; nil when the request says nothing (the worker's
// default then applies). Entries must be IPv4 addresses or CIDRs; the network features beyond egress lists
// are refused.
func egressOf(allowInternet *bool, n *e2b.NetworkConfig) (*schema.Egress, error) {
	e := schema.Egress{AllowAll: allowInternet == nil || *allowInternet}
	if n != nil {
		if len(n.MaskRequestHost) > 0 || len(n.HTTPSPorts) > 0 || len(n.EgressProxy) > 0 || len(n.Rules) > 0 {
			if !allNull(n.MaskRequestHost, n.HTTPSPorts, n.EgressProxy, n.Rules) {
				return nil, schema.Errorf(http.StatusBadRequest, "network: maskRequestHost, httpsPorts, egressProxy and rules are not supported; allowOut and denyOut are")
			}
		}
		e.Allow, e.Deny = n.AllowOut, n.DenyOut
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if allowInternet == nil && (n == nil || len(n.AllowOut)+len(n.DenyOut) == 0) {
		return nil, nil
	}
	return &e, nil
}

func allNull(raws ...[]byte) bool {
	for _, r := range raws {
		if len(r) > 0 && string(r) != "null" {
			return false
		}
	}
	return true
}
