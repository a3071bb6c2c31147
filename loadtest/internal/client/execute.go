package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"fleetbox.dev/schema/e2b"
)

// Execution is what run_code returned.
type Execution struct {
	Text   string // the main result's text ("2" for 1+1)
	Stdout string
	Lines  int
}

// RunCode calls the code interpreter's POST /execute and reads the NDJSON stream to its end. It fails if the
// stream has no end_of_execution line (the SDKs read to EOF; we are stricter, to catch truncated streams),
// or if the code raised (kind "code error").
func (c *Client) RunCode(ctx context.Context, sb e2b.Sandbox, code string) (Execution, error) {
	var ex Execution
	b, err := json.Marshal(e2b.ExecuteRequest{Code: &code})
	if err != nil {
		return ex, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.SandboxURL+"/execute", bytes.NewReader(b))
	if err != nil {
		return ex, err
	}
	req.Header.Set("Content-Type", "application/json")
	c.dataPlane(req, sb, CodeInterpreterPort)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return ex, Classify("run_code", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		rb, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return ex, httpError("run_code", resp.StatusCode, rb)
	}
	return readExecution(resp.Body)
}

// executeLine is the union of the /execute line types we look at.
type executeLine struct {
	Type         string `json:"type"`
	Text         string `json:"text"`
	IsMainResult bool   `json:"is_main_result"`
	Name         string `json:"name"`
	Value        string `json:"value"`
}

func readExecution(r io.Reader) (Execution, error) {
	var ex Execution
	sc := bufio.NewScanner(io.LimitReader(r, maxBody))
	sc.Buffer(make([]byte, 64<<10), maxBody)
	ended := false
	var codeErr *Error
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		ex.Lines++
		var l executeLine
		if err := json.Unmarshal(line, &l); err != nil {
			return ex, &Error{Kind: KindProtocol, Op: "run_code", Msg: fmt.Sprintf("line is not JSON: %.120q", line)}
		}
		switch l.Type {
		case "result":
			if l.IsMainResult {
				ex.Text = l.Text
			}
		case "stdout":
			ex.Stdout += l.Text
		case "error":
			codeErr = &Error{Kind: KindCodeError, Op: "run_code", Msg: l.Name + ": " + l.Value}
		case "end_of_execution":
			ended = true
		}
	}
	if err := sc.Err(); err != nil {
		return ex, Classify("run_code", err)
	}
	if codeErr != nil {
		return ex, codeErr
	}
	if !ended {
		return ex, &Error{Kind: KindProtocol, Op: "run_code", Msg: "stream ended without end_of_execution"}
	}
	return ex, nil
}
