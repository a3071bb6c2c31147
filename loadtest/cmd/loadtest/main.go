// Command loadtest drives churn against any E2B-compatible deployment (fleetbox or E2B's own cloud) and
// reports latencies, throughput and errors as text, JSON and a self-contained HTML page. `loadtest bench`
// starts a local fleetbox and writes BENCHMARKS.md.
//
//	loadtest run -profile churn -url http://127.0.0.1:3000 -json out.json -html out.html
//	loadtest run -shape poisson -rate 20 -duration 30s -dwell 2s
//	loadtest report -html out.html out.json
//	loadtest profiles
//	loadtest bench -apiserver bin/apiserver -worker bin/worker -out BENCHMARKS.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
		}
		os.Exit(1)
	}
}

// Run dispatches to a subcommand.
func Run(ctx context.Context, args []string) error {
	cmd, rest := "", args
	if len(args) > 0 {
		cmd, rest = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return (&RunCommand{}).Run(ctx, rest)
	case "report":
		return (&ReportCommand{}).Run(ctx, rest)
	case "profiles":
		return (&ProfilesCommand{}).Run(ctx, rest)
	case "bench":
		return (&BenchCommand{}).Run(ctx, rest)
	case "", "help", "-h", "-help", "--help":
		Usage()
		if cmd == "" {
			return flag.ErrHelp
		}
		return nil
	}
	return fmt.Errorf("unknown command %q (try: loadtest help)", cmd)
}

// Usage prints the top-level help.
func Usage() {
	fmt.Fprint(os.Stderr, `loadtest drives sandbox churn against an E2B-compatible API and reports it.

Usage:

	loadtest <command> [flags]

Commands:

	run       run a named profile or a shape against a URL
	report    rebuild the HTML (or text) report from a JSON report
	profiles  list the named profiles
	bench     start a local fleetbox, run the fixed bench and write BENCHMARKS.md

"loadtest <command> -h" describes a command's flags.
`)
}
