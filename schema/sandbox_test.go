package schema

import "testing"

func TestLookupTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ref    string
		wantID string
		ok     bool
	}{
		{"base", "base", true},
		{"code-interpreter-v1", "code-interpreter-v1", true},
		{"team/code-interpreter-v1:default", "code-interpreter-v1", true},
		{"base:latest", "base", true},
		{"nope", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := LookupTemplate(tt.ref)
		if ok != tt.ok || got.ID != tt.wantID {
			t.Errorf("LookupTemplate(%q) = %q, %v; want %q, %v", tt.ref, got.ID, ok, tt.wantID, tt.ok)
		}
	}
}

func TestRecordTransition(t *testing.T) {
	t.Parallel()
	r := Record{ID: "a", State: StatePending}
	r2, err := r.Transition(StateStarting, "")
	if err != nil || r2.State != StateStarting || r.State != StatePending {
		t.Fatalf("Transition: %v %v %v", r2.State, r.State, err)
	}
	if _, err := r2.Transition(StatePending, ""); err == nil {
		t.Fatal("starting -> pending must fail")
	}
}
