//go:build unix && !linux

package lb

import (
	"errors"
	"syscall"
)

// peekOpen peeks at a socket without blocking: it is open when there is
// nothing to read yet.
func peekOpen(fd uintptr) bool {
	var buf [1]byte
	_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return errors.Is(err, syscall.EAGAIN)
}
