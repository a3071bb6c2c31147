// Package hostmem reads how much memory the host has available for new sandboxes.
package hostmem

import "errors"

// ErrUnknown means this platform gives no reading; callers should not limit on it.
var ErrUnknown = errors.New("available memory unknown on this platform")

// AvailableMB returns the memory available for new work, in MiB.
func AvailableMB() (int, error) { return availableMB() }
