package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"fleetbox.dev/loadtest/internal/load"
)

// ProfilesCommand is `loadtest profiles`: it lists the named profiles.
type ProfilesCommand struct{}

// Run prints the profiles.
func (c *ProfilesCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadtest profiles", flag.ContinueOnError)
	fs.Usage = func() { c.Usage(fs) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSHAPE\tCODE\tDESCRIPTION")
	for _, p := range load.Profiles {
		code := p.Code
		if code == "" {
			code = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Shape, code, p.Description)
	}
	return tw.Flush()
}

// Usage prints the command's help.
func (c *ProfilesCommand) Usage(fs *flag.FlagSet) {
	fmt.Fprintln(os.Stderr, "Usage: loadtest profiles\n\nLists the named load profiles that `loadtest run -profile NAME` accepts.")
}
