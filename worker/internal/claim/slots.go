package claim

import "context"

// Slots counts the sandboxes a worker may hold at once. The claim loop takes a slot before it fetches a
// command; the slot stays taken while the sandbox lives and is given back when it is gone (or when the
// command turns out not to need it).
type Slots struct{ ch chan struct{} }

// NewSlots returns capacity free slots.
func NewSlots(capacity int) *Slots { return &Slots{ch: make(chan struct{}, max(capacity, 1))} }

// Acquire takes a slot, waiting until one is free or ctx ends.
func (s *Slots) Acquire(ctx context.Context) error {
	select {
	case s.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TryAcquire takes a slot if one is free now.
func (s *Slots) TryAcquire() bool {
	select {
	case s.ch <- struct{}{}:
		return true
	default:
		return false
	}
}

// Release gives a slot back.
func (s *Slots) Release() { <-s.ch }

// InUse returns how many slots are taken.
func (s *Slots) InUse() int { return len(s.ch) }

// Capacity returns the number of slots.
func (s *Slots) Capacity() int { return cap(s.ch) }
