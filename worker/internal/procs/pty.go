package procs

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/creack/pty"

	"fleetbox.dev/schema"
)

// openPTY opens a pseudo-terminal of the given size. Its controlling side (the master) is returned in
// non-blocking mode on the runtime's poller, so that reads and writes take deadlines and a blocked
// read ends when the file is closed: creack/pty hands it out in blocking mode (it calls Fd), and a read
// would otherwise hang for as long as any background job keeps the terminal open.
func openPTY(size schema.PTYSize) (master, tty *os.File, err error) {
	m, tty, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	defer m.Close() // its duplicate lives on
	fd, err := syscall.Dup(int(m.Fd()))
	if err != nil {
		_ = tty.Close()
		return nil, nil, fmt.Errorf("dup pty: %w", err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		_ = tty.Close()
		return nil, nil, fmt.Errorf("pty non-blocking: %w", err)
	}
	master = os.NewFile(uintptr(fd), m.Name())
	if err := setSize(master, size); err != nil {
		_ = master.Close()
		_ = tty.Close()
		return nil, nil, err
	}
	return master, tty, nil
}

// setSize sets a terminal's size through the poller's descriptor (pty.Setsize would call Fd, which
// puts the file back in blocking mode).
func setSize(master *os.File, size schema.PTYSize) error {
	clamp := func(v uint32) uint16 { return uint16(min(v, 0xffff)) }
	ws := pty.Winsize{Rows: clamp(size.Rows), Cols: clamp(size.Cols)}
	sc, err := master.SyscallConn()
	if err != nil {
		return fmt.Errorf("size pty: %w", err)
	}
	var errno syscall.Errno
	if err := sc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, uintptr(syscall.TIOCSWINSZ), uintptr(unsafe.Pointer(&ws)))
	}); err != nil {
		return fmt.Errorf("size pty: %w", err)
	}
	if errno != 0 {
		return fmt.Errorf("size pty: %w", errno)
	}
	return nil
}
