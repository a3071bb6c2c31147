package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"fleetbox.dev/loadtest/internal/report"
)

// ReportCommand is `loadtest report`: it rebuilds the HTML or text report from a JSON report.
type ReportCommand struct{}

// Run parses args and writes the reports.
func (c *ReportCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadtest report", flag.ContinueOnError)
	fs.Usage = func() { c.Usage(fs) }
	htmlOut := fs.String("html", "", "write the HTML report to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		c.Usage(fs)
		return errors.New("want exactly one JSON report")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := report.ReadJSON(f)
	if err != nil {
		return err
	}
	if *htmlOut == "" {
		rep.WriteText(os.Stdout)
		return nil
	}
	return writeReports(rep, "", *htmlOut)
}

// Usage prints the command's help.
func (c *ReportCommand) Usage(fs *flag.FlagSet) {
	fmt.Fprintln(os.Stderr, "Usage: loadtest report [-html out.html] report.json\n\nWithout -html, prints the text summary.\n\nFlags:")
	fs.PrintDefaults()
}
