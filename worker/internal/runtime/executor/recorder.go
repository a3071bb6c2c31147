package executor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Call is one command (or pipeline) a Recorder ran.
type Call struct {
	Argv  []string
	Stdin string
	// To is the receiving command of a Pipe call (Argv | To); nil for Run.
	To []string
}

// String is the command line, words joined by single spaces ("a b | c d" for a pipeline).
func (c Call) String() string {
	if c.To != nil {
		return strings.Join(c.Argv, " ") + " | " + strings.Join(c.To, " ")
	}
	return strings.Join(c.Argv, " ")
}

// Result is the scripted answer to a command.
type Result struct {
	Stdout string
	Err    error
}

// Recorder is an Executor for tests: it records every command in order and answers from a script keyed by
// command prefix (the longest matching prefix wins, then Once rules, then the rule added last; a command
// nothing matches succeeds with no output). A pipeline is recorded as one Call and answered as if its two
// commands ran one after the other: the receiving command's scripted failure wins, then the sending one's.
// It is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	calls  []Call
	script []rule
}

type rule struct {
	prefix []string
	res    Result
	times  int // remaining uses; < 0: unlimited
}

var _ Executor = (*Recorder)(nil)

// beats reports whether rule a wins over a rule b added after it: a longer prefix wins, then a Once rule
// over an On rule, then the later rule.
func (a rule) beats(b rule) bool {
	if len(a.prefix) != len(b.prefix) {
		return len(a.prefix) > len(b.prefix)
	}
	return a.times > 0 && b.times < 0
}

// On answers every command whose argv starts with prefix (words split on spaces) with res.
func (r *Recorder) On(prefix string, res Result) *Recorder { return r.on(prefix, res, -1) }

// Once answers the next command whose argv starts with prefix with res, then falls back to other rules.
func (r *Recorder) Once(prefix string, res Result) *Recorder { return r.on(prefix, res, 1) }

// Fail makes every command starting with prefix exit with code 1 and stderr msg.
func (r *Recorder) Fail(prefix, msg string) *Recorder {
	return r.On(prefix, Result{Err: &ExitError{Argv: strings.Fields(prefix), Code: 1, Stderr: msg}})
}

func (r *Recorder) on(prefix string, res Result, times int) *Recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = append(r.script, rule{prefix: strings.Fields(prefix), res: res, times: times})
	return r
}

// Run records argv and stdin and returns the scripted result.
func (r *Recorder) Run(ctx context.Context, argv []string, stdin []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, Call{Argv: slices.Clone(argv), Stdin: string(stdin)})
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return r.answerLocked(argv)
}

// Pipe records from | to and returns to's scripted output, or the scripted error of to, else of from.
func (r *Recorder) Pipe(ctx context.Context, from, to []string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, Call{Argv: slices.Clone(from), To: slices.Clone(to)})
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s | %s: %w", strings.Join(from, " "), strings.Join(to, " "), err)
	}
	_, errFrom := r.answerLocked(from)
	out, errTo := r.answerLocked(to)
	if errTo != nil {
		return out, errTo
	}
	return out, errFrom
}

// answerLocked returns the scripted result for argv, using up a Once rule. r.mu is held.
func (r *Recorder) answerLocked(argv []string) ([]byte, error) {
	best := -1
	for i, ru := range r.script {
		if ru.times == 0 || len(ru.prefix) > len(argv) || !slices.Equal(ru.prefix, argv[:len(ru.prefix)]) {
			continue
		}
		if best < 0 || !r.script[best].beats(ru) {
			best = i
		}
	}
	if best < 0 {
		return nil, nil
	}
	ru := &r.script[best]
	if ru.times > 0 {
		ru.times--
	}
	return []byte(ru.res.Stdout), ru.res.Err
}

// Calls returns the commands run so far, in order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Lines returns the command lines run so far, in order (Call.String).
func (r *Recorder) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.calls))
	for i, c := range r.calls {
		out[i] = c.String()
	}
	return out
}

// Reset forgets the recorded commands (the script stays).
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}
