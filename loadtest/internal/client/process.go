package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"fleetbox.dev/schema/e2b"
)

// Connect protocol envelope flags (server streaming, JSON codec).
const (
	flagEndStream  = 0x02
	flagCompressed = 0x01
)

// CommandResult is the outcome of one process.Process/Start stream.
type CommandResult struct {
	PID      int
	ExitCode int
	Stdout   []byte
	Stderr   []byte
}

// startRequest is process.StartRequest in proto3 JSON.
type startRequest struct {
	Process struct {
		Cmd  string            `json:"cmd"`
		Args []string          `json:"args"`
		Envs map[string]string `json:"envs,omitempty"`
	} `json:"process"`
	Stdin bool `json:"stdin"`
}

// processEvent is the `event` of StartResponse: exactly one of its fields is set.
type processEvent struct {
	Event struct {
		Start *struct {
			PID int `json:"pid"`
		} `json:"start"`
		Data *struct {
			Stdout []byte `json:"stdout"`
			Stderr []byte `json:"stderr"`
		} `json:"data"`
		End *struct {
			ExitCode int    `json:"exitCode"`
			Exited   bool   `json:"exited"`
			Status   string `json:"status"`
			Error    string `json:"error"`
		} `json:"end"`
		Keepalive *struct{} `json:"keepalive"`
	} `json:"event"`
}

// endStream is the Connect end-of-stream message.
type endStream struct {
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// RunCommand runs cmd as the SDK's commands.run does: envd's process.Process/Start with
// `/bin/bash -l -c <cmd>`, reading the server stream (start event, data, end event, end-stream envelope).
// A non-zero exit code is an error of kind "exit code".
func (c *Client) RunCommand(ctx context.Context, sb e2b.Sandbox, cmd string) (CommandResult, error) {
	var res CommandResult
	var sr startRequest
	sr.Process.Cmd = "/bin/bash"
	sr.Process.Args = []string{"-l", "-c", cmd}
	msg, err := json.Marshal(sr)
	if err != nil {
		return res, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.SandboxURL+"/process.Process/Start", bytes.NewReader(Envelope(0, msg)))
	if err != nil {
		return res, err
	}
	req.Header.Set("Content-Type", "application/connect+json")
	req.Header.Set("Connect-Protocol-Version", "1")
	if c.Timeout > 0 {
		req.Header.Set("Connect-Timeout-Ms", strconv.FormatInt(c.Timeout.Milliseconds(), 10))
	}
	req.Header.Set("Keepalive-Ping-Interval", "50")
	c.dataPlane(req, sb, EnvdPort)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return res, Classify("command", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		rb, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return res, httpError("command", resp.StatusCode, rb)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/connect+json") {
		return res, &Error{Kind: KindProtocol, Op: "command", Msg: fmt.Sprintf("Content-Type %q, want application/connect+json", ct)}
	}
	return readProcessStream(resp.Body)
}

// Envelope frames one Connect streaming message: flags, 4-byte big-endian length, payload.
func Envelope(flags byte, payload []byte) []byte {
	b := make([]byte, 5+len(payload))
	b[0] = flags
	binary.BigEndian.PutUint32(b[1:5], uint32(len(payload)))
	copy(b[5:], payload)
	return b
}

func readProcessStream(body io.Reader) (CommandResult, error) {
	var res CommandResult
	perr := func(format string, a ...any) error {
		return &Error{Kind: KindProtocol, Op: "command", Msg: fmt.Sprintf(format, a...)}
	}
	r := bufio.NewReader(body)
	started, ended := false, false
	var exitErr error
	var total int64
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return res, perr("stream ended without an end-stream envelope")
			}
			return res, Classify("command", err)
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if total += int64(n); total > maxBody {
			return res, perr("stream larger than %d bytes", maxBody)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return res, Classify("command", err)
		}
		if hdr[0]&flagCompressed != 0 {
			return res, perr("compressed envelope")
		}
		if hdr[0]&flagEndStream != 0 {
			var es endStream
			if err := json.Unmarshal(payload, &es); err != nil {
				return res, perr("end-stream is not JSON: %.120q", payload)
			}
			if es.Error != nil {
				return res, &Error{Kind: "connect " + es.Error.Code, Op: "command", Msg: es.Error.Message}
			}
			switch {
			case !started:
				return res, perr("stream without a start event")
			case !ended:
				return res, perr("stream without an end event")
			}
			return res, exitErr
		}
		var ev processEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return res, perr("message is not JSON: %.120q", payload)
		}
		e := ev.Event
		switch {
		case e.Start != nil:
			started = true
			res.PID = e.Start.PID
		case !started:
			return res, perr("first event is not a start event: %.120q", payload)
		case e.Data != nil:
			res.Stdout = append(res.Stdout, e.Data.Stdout...)
			res.Stderr = append(res.Stderr, e.Data.Stderr...)
		case e.End != nil:
			ended = true
			res.ExitCode = e.End.ExitCode
			if e.End.ExitCode != 0 || e.End.Error != "" {
				exitErr = &Error{Kind: KindExitCode, Op: "command", Msg: fmt.Sprintf("exit code %d: %s", e.End.ExitCode, e.End.Error)}
			}
		}
	}
}
