package schema

import (
	"regexp"
	"testing"
)

func TestNewSandboxID(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^[a-z0-9]{20}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewSandboxID()
		if !re.MatchString(id) || !ValidSandboxID(id) {
			t.Fatalf("bad id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestValidSandboxID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"abc123": true, "": false, "ABC": false, "a-b": false, "a.b": false, "a>b": false, "a*": false,
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcde": false,
	} {
		if got := ValidSandboxID(s); got != want {
			t.Errorf("ValidSandboxID(%q) = %v", s, got)
		}
	}
}
