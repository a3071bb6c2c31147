package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fleetbox.dev/loadtest/internal/e2btest"
	"fleetbox.dev/loadtest/internal/report"
)

func TestRunCommandAgainstFake(t *testing.T) {
	srv := e2btest.New()
	defer srv.Close()
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	var out bytes.Buffer
	err := (&RunCommand{Stdout: &out}).Run(t.Context(), []string{
		"-url", srv.URL, "-api-key", e2btest.Key, "-profile", "burst50", "-n", "7", "-rounds", "2", "-pause", "1ms",
		"-command", "true", "-json", jsonPath, "-html", htmlPath, "-min-success", "1",
	})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	f, err := os.Open(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := report.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Name != "burst50" || rep.Shape.N != 7 || rep.Shape.Rounds != 2 || rep.Command != "true" || rep.Code != "" {
		t.Errorf("flags did not override the profile: %+v", rep)
	}
	if rep.Lifecycles.OK != 14 || rep.Phase("command") == nil || rep.Phase("command").OK != 14 {
		t.Errorf("lifecycles %+v", rep.Lifecycles)
	}
	if srv.Live() != 0 {
		t.Errorf("%d sandboxes left", srv.Live())
	}
	if !strings.Contains(out.String(), "create") || strings.Contains(out.String(), "\r") {
		t.Errorf("text summary (and no progress line off a terminal):\n%q", out.String())
	}
	h, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(h))
	d.Strict = true
	for {
		if _, err := d.Token(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("HTML not well-formed: %v", err)
			}
			break
		}
	}

	// report rebuilds the HTML from the JSON.
	again := filepath.Join(dir, "again.html")
	if err := (&ReportCommand{}).Run(t.Context(), []string{"-html", again, jsonPath}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(again); !bytes.Equal(b, h) {
		t.Error("the HTML rebuilt from the JSON differs from the run's")
	}
}

func TestRunCommandFailures(t *testing.T) {
	srv := e2btest.New()
	defer srv.Close()
	srv.FailEvery = 2
	var out bytes.Buffer
	err := (&RunCommand{Stdout: &out}).Run(t.Context(), []string{
		"-url", srv.URL, "-api-key", e2btest.Key, "-shape", "sequential", "-n", "4", "-code", "", "-min-success", "0.9", "-q"})
	if err == nil || !strings.Contains(err.Error(), "below -min-success") {
		t.Errorf("half the creates failed but run said %v", err)
	}
	for _, args := range [][]string{
		{"-url", srv.URL, "-api-key", "", "-profile", "smoke"},
		{"-api-key", "k", "-profile", "nope"},
		{"-api-key", "k", "-shape", "zigzag"},
		{"-api-key", "k", "-shape", "concurrent", "-c", "2"},
		{"-api-key", "k", "stray"},
	} {
		if err := (&RunCommand{Stdout: io.Discard}).Run(t.Context(), args); err == nil {
			t.Errorf("run %q succeeded", args)
		}
	}
}

func TestDispatch(t *testing.T) {
	if err := Run(t.Context(), []string{"nope"}); err == nil {
		t.Error("unknown command accepted")
	}
	if err := Run(t.Context(), nil); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("no command: %v", err)
	}
	if err := Run(t.Context(), []string{"profiles"}); err != nil {
		t.Error(err)
	}
}
