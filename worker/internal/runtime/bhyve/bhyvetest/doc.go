// Package bhyvetest runs the bhyve runtime on Linux for tests, with everything real but the hypervisor
// (as bus/bustest runs real NATS servers): NewRuntime returns a bhyve.Runtime whose system commands go to
// a Host, a stateful stand-in for zfs, ifconfig and bhyvectl, and whose bhyve launches start fake guests.
// A fake guest is the test binary re-executed as a real agent.Server on 127.0.0.1 in a mount namespace of
// its own whose /home/user is the VM's shared home bind mounted (as the guest's fstab mounts the 9p
// share). A VM's processes run through the real agent client: the test binary again, as the worker
// binary's "agent-exec" subcommand, as the sandbox user. So Command, Prepare, files through /home/user,
// pause (every process of the guest stopped, as a stopped bhyve stops its guest), destroy and cleanup
// (every process of the guest killed, as a destroyed VM) are real.
//
// A test package that uses it has this TestMain, which dispatches the re-executed roles:
//
//	func TestMain(m *testing.M) { bhyvetest.Main(m) }
//
// It needs Linux and root (mount namespaces, a home owned by the sandbox user, processes run as it);
// NewRuntime skips the test, saying why, where either is missing. Elsewhere the package is empty.
package bhyvetest
