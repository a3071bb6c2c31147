package procs

import (
	"encoding/json"
)

// Kind says what an Event is.
type Kind int

// Event kinds, in the order a subscriber sees them: one start, any number of data, at most one end.
const (
	KindStart Kind = iota + 1
	KindData
	KindEnd
)

// Output streams of data events, named as envd's DataEvent fields.
const (
	Stdout = "stdout"
	Stderr = "stderr"
	PTY    = "pty"
)

// Reasons a process was ended by the table rather than by itself (End.Reason).
const (
	// ReasonTimeout: the process's lifetime (Options.Timeout) ran out and it was killed.
	ReasonTimeout = "timeout"
	// ReasonClosed: the table was closed (the sandbox was killed) and the process with it.
	ReasonClosed = "closed"
)

// Event is one event of a process, as a subscriber receives it.
type Event struct {
	Kind Kind
	PID  uint32
	// Stream and Data are set for KindData (Data is never longer than ChunkSize).
	Stream string
	Data   []byte
	// End is set for KindEnd.
	End *End
}

// End is how a process ended: the fields of envd's EndEvent plus why the table ended it, if it did.
type End struct {
	// ExitCode is -1 for a process killed by a signal, as Go's ProcessState.ExitCode reports it.
	ExitCode int32
	Exited   bool
	// Status is Go's ProcessState.String() ("exit status 2", "signal: killed").
	Status string
	// Error is the text of cmd.Wait's error, "" on success.
	Error string
	// Reason is ReasonTimeout or ReasonClosed when the table killed the process, else "".
	Reason string
}

// envd's ProcessEvent as protojson writes it: zero values are omitted, bytes are base64.
type lineJSON struct {
	Start *startJSON `json:"start,omitempty"`
	Data  *dataJSON  `json:"data,omitempty"`
	End   *endJSON   `json:"end,omitempty"`
}

type startJSON struct {
	PID uint32 `json:"pid"`
}

type dataJSON struct {
	Stdout []byte `json:"stdout,omitempty"`
	Stderr []byte `json:"stderr,omitempty"`
	PTY    []byte `json:"pty,omitempty"`
}

type endJSON struct {
	ExitCode int32  `json:"exitCode,omitempty"`
	Exited   bool   `json:"exited,omitempty"`
	Status   string `json:"status,omitempty"`
	Error    string `json:"error,omitempty"`
}

// KeepaliveLine is envd's keepalive event as one JSON line.
var KeepaliveLine = []byte("{\"keepalive\":{}}\n")

// Line returns the event as one line of JSON in envd's ProcessEvent shape, newline included:
// {"start":{"pid":1}}, {"data":{"stdout":"aGkK"}}, {"end":{"exited":true,"status":"exit status 0"}}.
func (e Event) Line() []byte {
	var l lineJSON
	switch e.Kind {
	case KindStart:
		l.Start = &startJSON{PID: e.PID}
	case KindData:
		d := &dataJSON{}
		switch e.Stream {
		case Stderr:
			d.Stderr = e.Data
		case PTY:
			d.PTY = e.Data
		default:
			d.Stdout = e.Data
		}
		l.Data = d
	case KindEnd:
		if e.End != nil {
			l.End = &endJSON{ExitCode: e.End.ExitCode, Exited: e.End.Exited, Status: e.End.Status, Error: e.End.Error}
		} else {
			l.End = &endJSON{}
		}
	}
	b, err := json.Marshal(l)
	if err != nil {
		// Unreachable: the shape has only strings, numbers and bytes.
		return []byte("{}\n")
	}
	return append(b, '\n')
}
