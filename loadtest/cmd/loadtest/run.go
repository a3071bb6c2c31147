package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"fleetbox.dev/loadtest/internal/client"
	"fleetbox.dev/loadtest/internal/load"
	"fleetbox.dev/loadtest/internal/report"
)

// RunCommand is `loadtest run`: one profile or shape against one deployment.
type RunCommand struct {
	Stdout io.Writer // default os.Stdout
}

// Run parses args and runs the load.
func (c *RunCommand) Run(ctx context.Context, args []string) error {
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	fs := flag.NewFlagSet("loadtest run", flag.ContinueOnError)
	fs.Usage = func() { c.Usage(fs) }
	var (
		profile    = fs.String("profile", "", "named profile (see `loadtest profiles`); flags given with it override its fields")
		baseURL    = fs.String("url", "http://127.0.0.1:3000", "API and sandbox URL (E2B_API_URL = E2B_SANDBOX_URL)")
		apiURL     = fs.String("api-url", "", "control-plane URL, if not -url (E2B cloud: https://api.e2b.app)")
		sbURL      = fs.String("sandbox-url", "", "data-plane URL routed by headers, if not -url (E2B cloud: https://sandbox.e2b.app)")
		apiKey     = fs.String("api-key", os.Getenv("E2B_API_KEY"), "API key (default $E2B_API_KEY)")
		template   = fs.String("template", "base", "template of every sandbox")
		code       = fs.String("code", "1+1", "Python run once in each sandbox through /execute; empty = none")
		command    = fs.String("command", "", "shell command run once in each sandbox through envd's process.Process/Start, e.g. true; empty = none")
		shape      = fs.String("shape", "", "sequential, burst, concurrent, poisson or idle (default: the profile's, else smoke)")
		n          = fs.Int("n", 0, "sandboxes: sequential and burst count, idle batch size, cap for concurrent and poisson")
		rounds     = fs.Int("rounds", 1, "burst: how many bursts")
		pause      = fs.Duration("pause", time.Second, "burst: pause between bursts")
		conc       = fs.Int("c", 0, "concurrent: lifecycles in flight; idle: creates and kills in flight")
		dur        = fs.Duration("duration", 0, "concurrent and poisson: how long to start new lifecycles")
		rate       = fs.Float64("rate", 0, "poisson: mean arrivals per second")
		dwell      = fs.Duration("dwell", 0, "how long each sandbox lives after its code and command before the kill (idle: how long the batch is held)")
		sample     = fs.Int("sample", 5, "idle: run the code in this many of the held sandboxes")
		sbTimeout  = fs.Int("sandbox-timeout", 120, "seconds each sandbox may live (E2B timeout), a backstop should a kill be lost")
		timeout    = fs.Duration("timeout", 30*time.Second, "per request (including the whole response stream)")
		maxTime    = fs.Duration("max-time", 10*time.Minute, "hard bound of the whole run")
		seed       = fs.Uint64("seed", 1, "seed of the Poisson schedule")
		jsonOut    = fs.String("json", "", "write the JSON report to this file")
		htmlOut    = fs.String("html", "", "write the HTML report to this file")
		minSuccess = fs.Float64("min-success", 0, "fail (exit 1) if the share of successful creates is below this, 0..1")
		quiet      = fs.Bool("q", false, "no text summary")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	p := load.Profile{Name: "custom", Code: *code, Command: *command}
	switch {
	case *profile != "":
		var err error
		if p, err = load.Lookup(*profile); err != nil {
			return err
		}
	case *shape == "":
		p, _ = load.Lookup("smoke")
	}
	if set["code"] || *profile == "" && *shape != "" {
		p.Code = *code
	}
	if set["command"] {
		p.Command = *command
	}
	s := p.Shape
	if *shape != "" {
		s = load.Shape{Kind: load.Kind(*shape), Rounds: *rounds, Pause: *pause, Sample: *sample}
	}
	override := func(name string, apply func()) {
		if set[name] {
			apply()
		}
	}
	override("n", func() { s.N = *n })
	override("rounds", func() { s.Rounds = *rounds })
	override("pause", func() { s.Pause = *pause })
	override("c", func() { s.Concurrency = *conc })
	override("duration", func() { s.Duration = *dur })
	override("rate", func() { s.Rate = *rate })
	override("dwell", func() { s.Dwell = *dwell })
	override("sample", func() { s.Sample = *sample })
	if err := s.Validate(); err != nil {
		return err
	}
	if *apiURL == "" {
		*apiURL = *baseURL
	}
	if *sbURL == "" {
		*sbURL = *baseURL
	}
	if *apiKey == "" {
		return errors.New("no API key: pass -api-key or set E2B_API_KEY")
	}

	cl := client.New(*apiURL, *sbURL, *apiKey, *timeout, s.MaxInFlight())
	defer cl.CloseIdle()
	rec := load.NewRecorder()
	started := time.Now()
	runID := fmt.Sprintf("%s-%d", p.Name, started.UnixNano())
	cfg := load.Config{
		Client: cl, Template: *template, SandboxTimeout: *sbTimeout, Code: p.Code, Command: p.Command,
		Shape: s, Seed: *seed, RunID: runID, MaxTime: *maxTime,
	}
	liveCtx, stopLive := context.WithCancel(ctx)
	liveDone := make(chan struct{})
	go func() {
		defer close(liveDone)
		if f, ok := c.Stdout.(*os.File); ok && report.IsTerminal(f) {
			report.Live(liveCtx, f, rec, 500*time.Millisecond)
		}
	}()
	res, runErr := load.Run(ctx, cfg, rec)
	stopLive()
	<-liveDone
	if res == nil {
		return runErr
	}
	rep := report.Build(report.Meta{
		Name: p.Name, Description: p.Description, APIURL: *apiURL, SandboxURL: *sbURL, Template: *template,
		Code: p.Code, Command: p.Command, Shape: s, StartedAt: started,
	}, rec.Ops(), res)
	if !*quiet {
		rep.WriteText(c.Stdout)
	}
	if err := writeReports(rep, *jsonOut, *htmlOut); err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if cr := rep.Phase("create"); *minSuccess > 0 && (cr == nil || cr.SuccessRate < *minSuccess) {
		got := 0.0
		if cr != nil {
			got = cr.SuccessRate
		}
		return fmt.Errorf("create success rate %.3f is below -min-success %.3f", got, *minSuccess)
	}
	return nil
}

func writeReports(rep *report.Report, jsonPath, htmlPath string) error {
	write := func(path string, fn func(io.Writer) error) error {
		if path == "" {
			return nil
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		return f.Close()
	}
	if err := write(jsonPath, rep.WriteJSON); err != nil {
		return err
	}
	return write(htmlPath, rep.WriteHTML)
}

// Usage prints the command's help.
func (c *RunCommand) Usage(fs *flag.FlagSet) {
	fmt.Fprintf(os.Stderr, `Usage: loadtest run [flags]

Each sandbox does: create (POST /sandboxes) → run_code (-code, POST /execute) → command (-command,
envd process.Process/Start) → dwell → kill (DELETE /sandboxes/{id}). Shapes:

	sequential -n N                        N lifecycles one after another
	burst -n N [-rounds R -pause D]        N at once, R times
	concurrent -c C -duration D [-n MAX]   C in flight for D (closed loop)
	poisson -rate R -duration D -dwell W   open-loop arrivals at R/s, each sandbox lives W
	idle -n N -c C [-sample K -dwell W]    keep N alive, list them, run code in K, kill all

Profiles: %s.

Against E2B's cloud: -api-url https://api.e2b.app -sandbox-url https://sandbox.e2b.app (mind your plan's
create rate and concurrency limits).

Flags:
`, profileNames())
	fs.PrintDefaults()
}

func profileNames() string {
	var names []string
	for _, p := range load.Profiles {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}
