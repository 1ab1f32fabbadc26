//go:build unix

package lb

import (
	"errors"
	"net"
	"syscall"
)

// alive reports whether an idle connection is still open: a peek that
// would block means open; end of file or stray bytes mean not.
func alive(nc net.Conn) bool {
	rc, err := rawConn(nc)
	if errors.Is(err, errNoSocket) {
		return true // nothing to peek at; let the request find out
	}
	if err != nil {
		return false
	}
	open := false
	err = rc.Read(func(fd uintptr) bool {
		open = peekOpen(fd)
		return true
	})
	return err == nil && open
}

var errNoSocket = errors.New("the connection has no socket")

// rawConn is nc's socket: errNoSocket for a conn without one (a pipe in
// memory), another error for a closed one.
func rawConn(nc net.Conn) (syscall.RawConn, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, errNoSocket
	}
	return sc.SyscallConn()
}
