package worker

import (
	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

// register puts every operation the worker serves on its Mux: the one table of what a sandbox answers
// on schema.SubjectOp(id, op).
func (w *Worker) register() {
	bus.Handle(w.mux, schema.OpKill, w.opKill)
	bus.Handle(w.mux, schema.OpTimeout, w.opTimeout)
	bus.Handle(w.mux, schema.OpExecute, w.opExecute)
	bus.Handle(w.mux, schema.OpInterrupt, w.opInterrupt)
	bus.Handle(w.mux, schema.OpContextCreate, w.opContextCreate)
	bus.Handle(w.mux, schema.OpContextList, w.opContextList)
	bus.Handle(w.mux, schema.OpContextDelete, w.opContextDelete)
	bus.Handle(w.mux, schema.OpContextRestart, w.opContextRestart)
}
