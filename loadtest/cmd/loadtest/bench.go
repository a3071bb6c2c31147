package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	"fleetbox.dev/loadtest/internal/bench"
)

// BenchCommand is `loadtest bench`: a local fleetbox, the fixed shapes, the baselines, BENCHMARKS.md.
type BenchCommand struct{}

// Run parses args and runs the bench.
func (c *BenchCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadtest bench", flag.ContinueOnError)
	fs.Usage = func() { c.Usage(fs) }
	cfg := bench.Config{Log: os.Stderr}
	fs.StringVar(&cfg.APIServer, "apiserver", "bin/apiserver", "apiserver binary")
	fs.StringVar(&cfg.Worker, "worker", "bin/worker", "worker binary")
	fs.StringVar(&cfg.Python, "python", defaultPython(), "interpreter of the spawn baseline and of the worker's sandboxes")
	fs.IntVar(&cfg.Capacity, "capacity", 1200, "worker -capacity")
	fs.IntVar(&cfg.Idle, "idle", 1000, "sandboxes held at once in the idle shape")
	fs.DurationVar(&cfg.ChurnDuration, "churn", 20*time.Second, "duration of the sustained churn")
	fs.StringVar(&cfg.Out, "out", "BENCHMARKS.md", "markdown file whose generated section is rewritten")
	fs.StringVar(&cfg.ReportsDir, "reports", "bin/bench", "directory for each shape's JSON and HTML report")
	fs.BoolVar(&cfg.Quick, "quick", false, "tiny shapes (seconds), to check the bench itself")
	budget := fs.Duration("max-time", 8*time.Minute, "hard bound of the whole bench")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ctx, cancel := context.WithTimeout(ctx, *budget)
	defer cancel()
	_, err := bench.Run(ctx, cfg)
	return err
}

func defaultPython() string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	if p, err := exec.LookPath("python3"); err == nil {
		return p
	}
	return "python3"
}

// Usage prints the command's help.
func (c *BenchCommand) Usage(fs *flag.FlagSet) {
	fmt.Fprintln(os.Stderr, `Usage: loadtest bench [flags]

Starts bin/apiserver (embedded NATS) and bin/worker on free loopback ports with a temporary data directory,
measures the baselines (python -c pass, NATS request/reply, loopback HTTP), runs sequential, burst, c=50,
time-to-interactive, a churn sweep plus sustained churn, Poisson and 1,000 idle sandboxes, stops everything,
and rewrites the generated section of BENCHMARKS.md. "make bench" runs it.

Flags:`)
	fs.PrintDefaults()
}
