package hostmem

import (
	"errors"
	"runtime"
	"testing"
)

func TestAvailableMB(t *testing.T) {
	t.Parallel()
	mb, err := AvailableMB()
	if runtime.GOOS != "linux" {
		if !errors.Is(err, ErrUnknown) {
			t.Fatalf("want ErrUnknown off Linux, got %v", err)
		}
		return
	}
	if err != nil || mb <= 0 {
		t.Fatalf("AvailableMB = %d, %v", mb, err)
	}
}
