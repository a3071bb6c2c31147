package bhyve

// CloseLifeline closes the write end of vm's lifeline, as Destroy does first, without the rest of
// Destroy (for the external tests).
func CloseLifeline(vm *VM) { vm.lifeW.Close() }
