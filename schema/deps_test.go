package schema

import (
	"os/exec"
	"strings"
	"testing"
)

// schema is the contract both sides compile against: it may import only the standard library.
func TestStdlibOnly(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg != "fleetbox.dev/schema" && !strings.HasPrefix(pkg, "fleetbox.dev/schema/") {
			t.Errorf("schema depends on %s", pkg)
		}
	}
}
