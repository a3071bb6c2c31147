// Package executor is the one door through which the FreeBSD runtimes (jail, bhyve) run system commands
// (zfs, jail, rctl, pfctl, pkill, ifconfig, bhyvectl). Keeping every command behind Executor lets their
// unit tests record the exact command lines and their order, and script failures, on any OS: Real runs
// commands with os/exec, Recorder (recorder.go) records them and answers from a script.
package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Executor runs one system command to completion.
type Executor interface {
	// Run runs argv (argv[0] is looked up on the PATH) with stdin as its standard input (nil: none) and
	// returns its standard output. A command that exits non-zero returns an *ExitError; cancelling ctx
	// kills the command.
	Run(ctx context.Context, argv []string, stdin []byte) (stdout []byte, err error)
}

// ExitError is a command that ran and exited with a non-zero status.
type ExitError struct {
	Argv   []string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	if msg == "" {
		return fmt.Sprintf("%s: exit status %d", strings.Join(e.Argv, " "), e.Code)
	}
	return fmt.Sprintf("%s: exit status %d: %s", strings.Join(e.Argv, " "), e.Code, msg)
}

// Real runs commands on this host with os/exec.
type Real struct{}

var _ Executor = Real{}

// Run runs argv and waits for it, bounded by ctx.
func (Real) Run(ctx context.Context, argv []string, stdin []byte) ([]byte, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("run: empty argv")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w", strings.Join(argv, " "), ctxErr)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.Bytes(), &ExitError{Argv: append([]string(nil), argv...), Code: ee.ExitCode(), Stderr: stderr.String()}
	}
	return stdout.Bytes(), fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
}

// ExitCode returns the exit code of err if it is (or wraps) an *ExitError, else -1.
func ExitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}
