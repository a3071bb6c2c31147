package schema

import "fmt"

// State is where a sandbox is in its life. Records move between states only by compare-and-set on the
// sandbox bucket, and only along AllowedTransitions.
type State string

const (
	// StatePending: the apiserver wrote the record and queued the create command; no worker owns it yet.
	StatePending State = "pending"
	// StateStarting: a worker claimed the command (the claim is this CAS) and is starting the runtime.
	StateStarting State = "starting"
	// StateRunning: the sandbox serves requests on its owner worker.
	StateRunning State = "running"
	// StatePaused: the sandbox's processes are stopped; it keeps its files and memory on its worker.
	StatePaused State = "paused"
	// StateKilling: a kill is in progress on the owner worker.
	StateKilling State = "killing"
	// StateKilled: terminal. The sandbox is gone; Reason says why (killed by the user, timeout, ...).
	StateKilled State = "killed"
	// StateFailed: terminal. The sandbox never started; Reason says why.
	StateFailed State = "failed"
	// StateLost: terminal. The owner worker disappeared (heartbeat expired) with the sandbox on it.
	StateLost State = "lost"
)

// AllowedTransitions is the state machine, as data. A state missing from the map is terminal.
var AllowedTransitions = map[State]map[State]bool{
	StatePending:  {StateStarting: true, StateFailed: true, StateKilled: true},
	StateStarting: {StateRunning: true, StateFailed: true, StateKilled: true, StateLost: true},
	StateRunning:  {StatePaused: true, StateKilling: true, StateKilled: true, StateLost: true},
	StatePaused:   {StateRunning: true, StateKilling: true, StateKilled: true, StateLost: true},
	StateKilling:  {StateKilled: true, StateLost: true},
}

// CanTransition reports whether a record may move from one state to another.
func CanTransition(from, to State) bool { return AllowedTransitions[from][to] }

// Terminal reports whether no transition leaves s.
func (s State) Terminal() bool { return len(AllowedTransitions[s]) == 0 }

// Live reports whether a sandbox in state s exists for clients (listed, reachable, killable).
func (s State) Live() bool { return s == StateRunning || s == StatePaused }

// TransitionError is returned when a write would break the state machine.
type TransitionError struct {
	ID       string
	From, To State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("sandbox %s: invalid transition %s -> %s", e.ID, e.From, e.To)
}

// Reasons recorded when a sandbox ends. They are shown to clients in error messages.
const (
	ReasonKilled        = "killed by request"
	ReasonTimeout       = "timeout reached"
	ReasonWorkerLost    = "worker lost"
	ReasonWorkerDrained = "worker drained"
	ReasonCreateTimeout = "no worker started the sandbox in time"
	// ReasonWorkerRestarted ends the records of sandboxes a worker held when it stopped without draining
	// (crash, kill -9) and could not adopt after its restart.
	ReasonWorkerRestarted = "worker restarted"
)
