//go:build !linux

package hostmem

// availableMB has no portable source outside Linux yet (FreeBSD: vm.stats.vm.v_free_count and
// v_inactive_count times the page size would do).
func availableMB() (int, error) { return 0, ErrUnknown }
