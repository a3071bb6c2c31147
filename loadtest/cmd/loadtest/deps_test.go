package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The load tester is a client: it must not link the apiserver or the worker (nor the bus), only schema,
// nats.go (for the NATS baseline) and the standard library.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "fleetbox.dev/loadtest/cmd/loadtest").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, bad := range []string{"fleetbox.dev/apiserver", "fleetbox.dev/worker", "fleetbox.dev/bus", "github.com/nats-io/nats-server"} {
			if pkg == bad || strings.HasPrefix(pkg, bad+"/") {
				t.Errorf("loadtest depends on %s", pkg)
			}
		}
	}
}
