package schema

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorIs(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("kill: %w", Errorf(404, "sandbox %s not found", "x"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatal("wrapped 404 must match ErrNotFound")
	}
	if errors.Is(err, ErrConflict) {
		t.Fatal("404 must not match ErrConflict")
	}
	if CodeOf(err) != 404 || CodeOf(errors.New("x")) != 500 {
		t.Fatal("CodeOf")
	}
}
