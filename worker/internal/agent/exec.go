package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// ExecEnvVar carries the remote process's environment to ExecMain (EncodeEnv). The environment travels
// in this one variable instead of as the client's own environment because the client runs on the host:
// variables meant for the guest (LD_PRELOAD, GODEBUG, ...) must not act on the host's dynamic linker or
// Go runtime.
const ExecEnvVar = "SBX_AGENT_ENV"

// ForwardedSignals are the signals ExecMain passes on to the remote process group. SIGKILL cannot be
// caught: it kills the client, whose lost connection makes the agent kill the group.
var ForwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// Exit codes of ExecMain for failures of its own (the remote process's codes pass through).
const (
	// ExitUsage: bad flags.
	ExitUsage = 2
	// ExitDestroyed: the lifeline closed (the sandbox was destroyed), as if killed by SIGKILL.
	ExitDestroyed = 128 + 9
	// ExitAgent: the agent could not be reached or the connection was lost, as ssh(1) does.
	ExitAgent = 255
)

// EncodeEnv encodes env for ExecEnvVar.
func EncodeEnv(env []string) string {
	b, _ := json.Marshal(env)
	return base64.StdEncoding.EncodeToString(b)
}

// DecodeEnv decodes the value of ExecEnvVar.
func DecodeEnv(s string) ([]string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", ExecEnvVar, err)
	}
	var env []string
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("decode %s: %w", ExecEnvVar, err)
	}
	return env, nil
}

// ExecMain is the agent client as a command (the worker's "agent-exec" subcommand; args exclude it):
//
//	agent-exec -addr HOST:PORT [-dir DIR] [-uid N -gid N] [-lifeline-fd FD] [-timeout D] -- ARGV...
//
// It runs ARGV on the agent at HOST:PORT in DIR (a guest path, default "/"), relays its own standard
// input, output and error, forwards ForwardedSignals to the remote process group, and returns the exit
// code to exit with: the remote one, 128 + the signal number for a process killed by a signal (as a
// shell reports it), 126/127 when the program cannot be run or found, ExitAgent when the agent is
// unreachable or the connection is lost, ExitDestroyed when the lifeline closes. The remote process
// runs as the client's own uid and gid unless -uid and -gid say otherwise (so that a caller sets the
// remote user by setting the client's credentials). Its environment is ExecEnvVar's (EncodeEnv) if set,
// else the client's own. -lifeline-fd names an inherited file whose end of file means the sandbox is
// gone: the client then ends the connection and exits. There is no terminal: the remote stdin, stdout
// and stderr are pipes even if the client's are a terminal.
func ExecMain(args []string) int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, ForwardedSignals...)
	defer signal.Stop(sigs)
	return execMain(args, os.Environ(), os.Stdin, os.Stdout, os.Stderr, sigs)
}

func execMain(args, environ []string, stdin io.Reader, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	fs := flag.NewFlagSet("agent-exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "agent address, host:port (required)")
	dir := fs.String("dir", "/", "working directory in the guest")
	uid := fs.Int("uid", -1, "uid to run as in the guest (-1: the client's own)")
	gid := fs.Int("gid", -1, "gid to run as in the guest (-1: the client's own)")
	lifeline := fs.Int("lifeline-fd", -1, "inherited file descriptor whose end of file means the sandbox is gone (-1: none)")
	timeout := fs.Duration("timeout", DialTimeout, "bound on connecting to the agent and starting the process")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: agent-exec -addr HOST:PORT [-dir DIR] [-uid N -gid N] [-lifeline-fd FD] -- ARGV...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	argv := fs.Args()
	if *addr == "" || len(argv) == 0 || (*uid < 0) != (*gid < 0) {
		fs.Usage()
		return ExitUsage
	}
	h := Header{Argv: argv, Dir: *dir}
	if *uid < 0 {
		*uid, *gid = os.Getuid(), os.Getgid()
	}
	h.UID, h.GID = uid, gid
	h.Env = environ
	for _, kv := range environ {
		if v, ok := cutVar(kv, ExecEnvVar); ok {
			env, err := DecodeEnv(v)
			if err != nil {
				fmt.Fprintf(stderr, "agent-exec: %v\n", err)
				return ExitUsage
			}
			h.Env = env
		}
	}

	gone := make(chan struct{})
	if *lifeline >= 0 {
		f := os.NewFile(uintptr(*lifeline), "lifeline")
		if f == nil {
			fmt.Fprintf(stderr, "agent-exec: bad -lifeline-fd %d\n", *lifeline)
			return ExitUsage
		}
		go func() {
			_, _ = io.Copy(io.Discard, f)
			close(gone)
		}()
	}

	sctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	type started struct {
		p   *Process
		err error
	}
	startc := make(chan started, 1)
	go func() {
		// Start's context bounds only the start (the connection's life would end with it).
		p, err := Start(context.Background(), *addr, h, stdin, stdout, stderr)
		startc <- started{p, err}
	}()
	var p *Process
	select {
	case s := <-startc:
		if s.err != nil {
			var se *StartError
			if errors.As(s.err, &se) {
				fmt.Fprintln(stderr, se.Message)
				return se.Code
			}
			fmt.Fprintf(stderr, "agent-exec: %v\n", s.err)
			return ExitAgent
		}
		p = s.p
	case <-sctx.Done():
		fmt.Fprintf(stderr, "agent-exec: %s: no answer within %v\n", *addr, *timeout)
		return ExitAgent
	case <-gone:
		fmt.Fprintln(stderr, "agent-exec: the sandbox was destroyed")
		return ExitDestroyed
	}
	cancel()

	type waited struct {
		st  Status
		err error
	}
	waitc := make(chan waited, 1)
	go func() {
		st, err := p.Wait()
		waitc <- waited{st, err}
	}()
	for {
		select {
		case sig := <-sigs:
			if s, ok := sig.(syscall.Signal); ok {
				_ = p.Signal(s)
			}
		case <-gone:
			p.Close()
			fmt.Fprintln(stderr, "agent-exec: the sandbox was destroyed")
			return ExitDestroyed
		case w := <-waitc:
			if w.err != nil {
				fmt.Fprintf(stderr, "agent-exec: %v\n", w.err)
				return ExitAgent
			}
			return w.st.ExitCode()
		}
	}
}

func cutVar(kv, name string) (string, bool) {
	if len(kv) > len(name) && kv[:len(name)] == name && kv[len(name)] == '=' {
		return kv[len(name)+1:], true
	}
	return "", false
}
