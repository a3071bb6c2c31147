package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
)

// opNetwork replaces a live sandbox's egress policy, in the runtime first and then in its record.
func (w *Worker) opNetwork(ctx context.Context, id string, req schema.NetworkRequest) (schema.Record, error) {
	sb, err := w.lookupAny(id)
	if err != nil {
		return schema.Record{}, err
	}
	e, err := runtimeEgress(req.Egress)
	if err != nil {
		return schema.Record{}, err
	}
	// One change at a time, so that the policy enforced and the one recorded are the same.
	sb.lifeMu.Lock()
	defer sb.lifeMu.Unlock()
	es, ok := sb.rt.(runtime.EgressSetter)
	switch {
	case ok && w.rt.Capabilities().Egress:
		if err := es.SetEgress(ctx, e); err != nil {
			if errors.Is(err, runtime.ErrDestroyed) {
				return schema.Record{}, sandboxNotFound(id)
			}
			return schema.Record{}, fmt.Errorf("network of %s: %w", id, err)
		}
	case req.Egress.Restricts():
		return schema.Record{}, errNoEgress(w.rt.Name())
	}
	// (A runtime without policies has nothing to do for one that allows everything.)
	rec, _, err := w.bus.UpdateRecord(ctx, id, func(cur schema.Record) (schema.Record, error) {
		if cur.Worker != w.id || !cur.State.Live() {
			return cur, schema.Errorf(http.StatusConflict, "sandbox %s is %s", id, cur.State)
		}
		eg := req.Egress
		cur.Egress = &eg
		return cur, nil
	})
	return rec, err
}

func errNoEgress(runtimeName string) error {
	return schema.Errorf(http.StatusNotImplemented,
		"the %s runtime cannot enforce egress policies (allow_internet_access: false, network allowOut/denyOut); run the worker with -runtime jail", runtimeName)
}

// runtimeEgress turns a record's egress policy into the runtime's.
func runtimeEgress(e schema.Egress) (runtime.Egress, error) {
	allow, err := schema.ParsePrefixes(e.Allow)
	if err != nil {
		return runtime.Egress{}, err
	}
	deny, err := schema.ParsePrefixes(e.Deny)
	if err != nil {
		return runtime.Egress{}, err
	}
	return runtime.Egress{AllowAll: e.AllowAll, Allow: allow, Deny: deny}, nil
}
