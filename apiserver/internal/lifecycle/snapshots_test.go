package lifecycle

import (
	"strings"
	"testing"

	"fleetbox.dev/schema"
)

func TestValidateSnapshotName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		wantCode int
	}{
		{"a", 0}, {"my-snapshot_v1.2", 0}, {"Golden", 0}, {"0abc", 0}, {strings.Repeat("x", MaxSnapshotName), 0},
		{"", 400}, {strings.Repeat("x", MaxSnapshotName+1), 400}, {"-x", 400}, {".x", 400}, {"a/b", 400}, {"a:b", 400},
		{"a b", 400}, {"é", 400}, {"x\x00", 400},
		{"base", 409}, {"code-interpreter", 409}, {"code-interpreter-v1", 409},
	} {
		err := ValidateSnapshotName(tt.name)
		got := 0
		if err != nil {
			got = schema.CodeOf(err)
		}
		if got != tt.wantCode {
			t.Errorf("ValidateSnapshotName(%.20q) = %v, want code %d", tt.name, err, tt.wantCode)
		}
	}
}

func TestMatchesSnapshot(t *testing.T) {
	t.Parallel()
	snap := schema.Snapshot{ID: "abc123", Names: []string{"golden"}}
	for ref, want := range map[string]bool{
		"abc123": true, "golden": true, "team/golden:default": true, "golden:v1": true, "team/abc123": true,
		"gold": false, "team/other:golden": false, "": false,
	} {
		if got := matchesSnapshot(snap, ref); got != want {
			t.Errorf("matchesSnapshot(%q) = %v, want %v", ref, got, want)
		}
	}
}
