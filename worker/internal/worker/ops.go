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
	bus.Handle(w.mux, schema.OpPause, w.opPause)
	bus.Handle(w.mux, schema.OpResume, w.opResume)
	bus.Handle(w.mux, schema.OpSnapshot, w.opSnapshot)
	bus.Handle(w.mux, schema.OpMetrics, w.opMetrics)
	bus.Handle(w.mux, schema.OpNetwork, w.opNetwork)

	// envd: process.Process (op_process.go)
	bus.Handle(w.mux, schema.OpProcessStart, w.opProcessStart)
	bus.Handle(w.mux, schema.OpProcessConnect, w.opProcessConnect)
	bus.Handle(w.mux, schema.OpProcessList, w.opProcessList)
	bus.Handle(w.mux, schema.OpProcessInput, w.opProcessInput)
	bus.Handle(w.mux, schema.OpProcessSignal, w.opProcessSignal)
	bus.Handle(w.mux, schema.OpProcessCloseStdin, w.opProcessCloseStdin)
	bus.Handle(w.mux, schema.OpProcessUpdate, w.opProcessUpdate)
	// envd: filesystem.Filesystem (op_fs.go, op_watch.go) and /files, /envs (op_files.go, op_fs.go)
	bus.Handle(w.mux, schema.OpFsStat, w.opFsStat)
	bus.Handle(w.mux, schema.OpFsListDir, w.opFsListDir)
	bus.Handle(w.mux, schema.OpFsMakeDir, w.opFsMakeDir)
	bus.Handle(w.mux, schema.OpFsMove, w.opFsMove)
	bus.Handle(w.mux, schema.OpFsRemove, w.opFsRemove)
	bus.Handle(w.mux, schema.OpFsWatch, w.opFsWatch)
	bus.Handle(w.mux, schema.OpFsWatcherCreate, w.opFsWatcherCreate)
	bus.Handle(w.mux, schema.OpFsWatcherEvents, w.opFsWatcherEvents)
	bus.Handle(w.mux, schema.OpFsWatcherRemove, w.opFsWatcherRemove)
	bus.Handle(w.mux, schema.OpFileRead, w.opFileRead)
	bus.Handle(w.mux, schema.OpFileWriteBegin, w.opFileWriteBegin)
	bus.Handle(w.mux, schema.OpFileWriteCommit, w.opFileWriteCommit)
	bus.Handle(w.mux, schema.OpEnvs, w.opEnvs)

	// Addressed to the worker itself (op_place.go, op_snapshot.go).
	bus.Handle(w.workerMux, schema.OpWorkerCreate, w.opWorkerCreate)
	bus.Handle(w.workerMux, schema.OpSnapshotDelete, w.opSnapshotDelete)
}
