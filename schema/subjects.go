package schema

// Names on the bus. Nothing outside this file spells a subject, stream, consumer or bucket name.
//
//	sbx.cmd.create                      JetStream work queue: create commands, claimed by free workers
//	sbx.op.<sandbox>.<op>               request/reply to the owner worker of one sandbox
//	sbx.worker.<worker>.<op>            request/reply to one worker: creates placed on it, its snapshots
//	sbx.evt.<sandbox>                   the sandbox record after each write by its owner (core NATS)
//	sbx.stream.<sandbox>.<stream>.data  an ordered byte stream (run_code output, command output, files)
//	sbx.stream.<sandbox>.<stream>.credit  flow-control credit from the reader back to the writer
const (
	// StreamCommands is the work-queue stream of lifecycle commands.
	StreamCommands = "SBX_CMD"
	// SubjectCommands is the subject filter of StreamCommands.
	SubjectCommands = "sbx.cmd.>"
	// SubjectCreate carries CreateCommand messages (Nats-Msg-Id = sandbox id).
	SubjectCreate = "sbx.cmd.create"
	// ConsumerCreate is the one durable pull consumer all workers share.
	ConsumerCreate = "create"

	// BucketSandboxes holds one Record per sandbox, keyed by sandbox id.
	BucketSandboxes = "sbx_sandboxes"
	// BucketWorkers holds one WorkerInfo per live worker; keys expire when heartbeats stop.
	BucketWorkers = "sbx_workers"
	// BucketLeases holds leases for fleet-wide singleton jobs (the reaper of lost workers).
	BucketLeases = "sbx_leases"
	// BucketSnapshots holds one Snapshot per snapshot, keyed by snapshot id.
	BucketSnapshots = "sbx_snapshots"
)

// SubjectWorkerOp is where worker id answers operation op (OpWorkerCreate, OpSnapshotDelete) addressed to
// it rather than to one of its sandboxes.
func SubjectWorkerOp(worker, op string) string { return "sbx.worker." + worker + "." + op }

// SubjectWorkerOps is what worker id subscribes to for the operations addressed to it.
func SubjectWorkerOps(worker string) string { return "sbx.worker." + worker + ".>" }

// Operations served by one worker on SubjectWorkerOp.
const (
	// OpWorkerCreate takes a CreateCommand placed on this worker rather than queued: a sandbox made from a
	// snapshot starts on the worker that holds the snapshot. The reply is Reply[Empty], sent once the
	// worker has claimed the record (moved it pending → starting), or an error (503: no free slot).
	OpWorkerCreate = "create"
	// OpSnapshotDelete removes a snapshot from the worker holding it and from BucketSnapshots
	// (SnapshotDeleteRequest → Reply[Empty]).
	OpSnapshotDelete = "snapshot-delete"
)

// Operations served by the owner worker of a sandbox on SubjectOp.
const (
	OpKill           = "kill"
	OpTimeout        = "timeout"
	OpExecute        = "execute"
	OpInterrupt      = "interrupt"
	OpContextCreate  = "ctx-create"
	OpContextList    = "ctx-list"
	OpContextDelete  = "ctx-delete"
	OpContextRestart = "ctx-restart"
	// OpPause stops every process of a running sandbox in place (PauseRequest → Reply[Record]).
	OpPause = "pause"
	// OpResume continues a paused sandbox (ResumeRequest → Reply[Record]).
	OpResume = "resume"
	// OpNetwork replaces a live sandbox's egress policy (NetworkRequest → Reply[Record]; 501 if its runtime
	// cannot enforce one).
	OpNetwork = "network"
	// OpMetrics samples the sandbox's resource usage (MetricsRequest → Reply[[]Metric]).
	OpMetrics = "metrics"
	// OpSnapshot captures a live sandbox's file system as a snapshot (SnapshotRequest → Reply[Snapshot]).
	OpSnapshot = "snapshot"
)

// SubjectOp is where the owner worker of sandbox id answers operation op.
func SubjectOp(id, op string) string { return "sbx.op." + id + "." + op }

// SubjectOps is what the owner worker subscribes to for sandbox id.
func SubjectOps(id string) string { return "sbx.op." + id + ".>" }

// SubjectEvents carries the sandbox record after each write by its owner, for waiters.
func SubjectEvents(id string) string { return "sbx.evt." + id }

// SubjectStreamData carries the chunks of one ordered byte stream of sandbox id.
func SubjectStreamData(id, stream string) string { return "sbx.stream." + id + "." + stream + ".data" }

// SubjectStreamCredit carries the reader's flow-control credit for one stream back to its writer.
func SubjectStreamCredit(id, stream string) string {
	return "sbx.stream." + id + "." + stream + ".credit"
}
