// Package executor is the one door through which the FreeBSD runtimes (jail, bhyve) run system commands
// (zfs, jail, rctl, pfctl, pkill, ifconfig, bhyvectl), alone or as a two-command pipeline (zfs send | zfs
// recv). Keeping every command behind Executor lets their unit tests record the exact command lines and
// their order, and script failures, on any OS: Real runs commands with os/exec, Recorder (recorder.go)
// records them and answers from a script.
package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Executor runs one system command to completion.
type Executor interface {
	// Run runs argv (argv[0] is looked up on the PATH) with stdin as its standard input (nil: none) and
	// returns its standard output. A command that exits non-zero returns an *ExitError; cancelling ctx
	// kills the command.
	Run(ctx context.Context, argv []string, stdin []byte) (stdout []byte, err error)

	// Pipe runs from and to at once with from's standard output as to's standard input (a shell's
	// "from | to", without a shell), waits for both and returns to's standard output. If either exits
	// non-zero the error is an *ExitError of that command (to's first when both failed: from then usually
	// only reports the broken pipe), joined with the other's; cancelling ctx kills both.
	Pipe(ctx context.Context, from, to []string) (stdout []byte, err error)
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
	return stdout.Bytes(), exitErr(argv, err, &stderr)
}

// Pipe runs from | to and waits for both, bounded by ctx.
func (Real) Pipe(ctx context.Context, from, to []string) ([]byte, error) {
	if len(from) == 0 || from[0] == "" || len(to) == 0 || to[0] == "" {
		return nil, errors.New("pipe: empty argv")
	}
	src := exec.CommandContext(ctx, from[0], from[1:]...)
	dst := exec.CommandContext(ctx, to[0], to[1:]...)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe %s: %w", strings.Join(from, " "), err)
	}
	var stdout, srcErr, dstErr bytes.Buffer
	src.Stdout, src.Stderr = w, &srcErr
	dst.Stdin, dst.Stdout, dst.Stderr = r, &stdout, &dstErr
	if err := dst.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("%s: %w", strings.Join(to, " "), err)
	}
	err = src.Start()
	// The children hold their own copies: closing ours lets to see EOF when from exits, and from see a
	// broken pipe when to exits early.
	r.Close()
	w.Close()
	if err != nil {
		_ = dst.Wait()
		return nil, fmt.Errorf("%s: %w", strings.Join(from, " "), err)
	}
	errSrc, errDst := src.Wait(), dst.Wait()
	if ctxErr := ctx.Err(); ctxErr != nil && (errSrc != nil || errDst != nil) {
		return stdout.Bytes(), fmt.Errorf("%s | %s: %w", strings.Join(from, " "), strings.Join(to, " "), ctxErr)
	}
	return stdout.Bytes(), errors.Join(exitErr(to, errDst, &dstErr), exitErr(from, errSrc, &srcErr))
}

// exitErr turns the error of a finished command into an *ExitError (or a wrapped error if it did not run
// to an exit status); nil stays nil.
func exitErr(argv []string, err error, stderr *bytes.Buffer) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Argv: append([]string(nil), argv...), Code: ee.ExitCode(), Stderr: stderr.String()}
	}
	return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
}

// ExitCode returns the exit code of err if it is (or wraps) an *ExitError, else -1.
func ExitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}
