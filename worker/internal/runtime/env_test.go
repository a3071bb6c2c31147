package runtime

import (
	"slices"
	"testing"
)

func TestSandboxEnv(t *testing.T) {
	t.Parallel()
	got := SandboxEnv("abc", []string{"HOME=/home/user", "PATH=/bin"}, map[string]string{
		"PATH": "/opt/bin", "B": "2", "A": "1\x00x", "E2B_SANDBOX_ID": "forged", "BAD=NAME": "x", "": "y",
	})
	want := []string{"HOME=/home/user", "PATH=/opt/bin", "A=1x", "B=2", "E2B_SANDBOX=true", "E2B_SANDBOX_ID=abc"}
	if !slices.Equal(got, want) {
		t.Fatalf("SandboxEnv = %q, want %q", got, want)
	}
	if v := EnvValue(append(got, "PATH=/last"), "PATH"); v != "/last" {
		t.Fatalf("EnvValue = %q", v)
	}
	if v := EnvValue(got, "MISSING"); v != "" {
		t.Fatalf("EnvValue of a missing name = %q", v)
	}
}
