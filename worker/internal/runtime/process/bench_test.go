package process_test

import (
	"context"
	"testing"

	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/runtime"
)

// BenchmarkCreateDestroy measures one sandbox's life in the process runtime, without processes of its own.
func BenchmarkCreateDestroy(b *testing.B) {
	rt, err := newRuntimeB(b)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		sb, err := rt.Create(context.Background(), runtime.Spec{ID: schema.NewSandboxID()})
		if err != nil {
			b.Fatal(err)
		}
		if err := sb.Destroy(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreate measures Create alone (the part on the create path).
func BenchmarkCreate(b *testing.B) {
	rt, err := newRuntimeB(b)
	if err != nil {
		b.Fatal(err)
	}
	var sbs []runtime.Sandbox
	for b.Loop() {
		sb, err := rt.Create(context.Background(), runtime.Spec{ID: schema.NewSandboxID()})
		if err != nil {
			b.Fatal(err)
		}
		sbs = append(sbs, sb)
	}
	b.StopTimer()
	for _, sb := range sbs {
		_ = sb.Destroy(context.Background())
	}
}
