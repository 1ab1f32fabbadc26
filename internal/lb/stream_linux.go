package lb

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// stream reads and writes a connection's socket with raw system calls
// through the runtime poller. net.Conn's Read and Write enter the runtime's
// syscall state, which lets its monitor thread hand the processor to
// another thread when a loopback write takes a few microseconds; under
// load that hand-off, and the monitor waking every 20 µs to do it, cost
// the fast path about a tenth of its CPU. A read or write on a
// non-blocking socket never blocks, so it does not need that state.
type stream struct {
	nc net.Conn
	rc syscall.RawConn
	// One reader and one writer may run at once, so each direction keeps
	// its own call state.
	rbuf, wbuf []byte
	rn, wn     int
	rerr, werr error
	// Bound once, so a call allocates nothing.
	readFn, writeFn func(uintptr) bool
}

// newStream returns a reader and writer for nc: a stream where nc is a
// socket, else nc itself.
func newStream(nc net.Conn) io.ReadWriter {
	rc, err := rawConn(nc)
	if err != nil {
		return nc
	}
	s := &stream{nc: nc, rc: rc}
	s.readFn, s.writeFn = s.read, s.write
	return s
}

func (s *stream) read(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(s.rbuf))), uintptr(len(s.rbuf)))
		switch errno {
		case 0:
			s.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait for the poller
		}
		s.rerr = errno
		return true
	}
}

func (s *stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rbuf, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.readFn)
	s.rbuf = nil
	if err != nil {
		return 0, err
	}
	if s.rerr != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: s.nc.LocalAddr(), Addr: s.nc.RemoteAddr(), Err: s.rerr}
	}
	if s.rn == 0 {
		return 0, io.EOF
	}
	return s.rn, nil
}

func (s *stream) write(fd uintptr) bool {
	for len(s.wbuf) > 0 {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(s.wbuf))), uintptr(len(s.wbuf)))
		switch errno {
		case 0:
			s.wn += int(n)
			s.wbuf = s.wbuf[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // the send buffer is full: wait for room
		default:
			s.werr = errno
			return true
		}
	}
	return true
}

func (s *stream) Write(p []byte) (int, error) {
	s.wbuf, s.wn, s.werr = p, 0, nil
	err := s.rc.Write(s.writeFn)
	s.wbuf = nil
	if err == nil && s.werr != nil {
		err = &net.OpError{Op: "write", Net: "tcp", Source: s.nc.LocalAddr(), Addr: s.nc.RemoteAddr(), Err: s.werr}
	}
	return s.wn, err
}

// peekOpen peeks at a socket without blocking: it is open when there is
// nothing to read yet. A raw call, as in stream: through syscall.Recvfrom,
// each peek woke the runtime's monitor thread, which then polled every
// 20 µs for a while.
func peekOpen(fd uintptr) bool {
	var buf [1]byte
	for {
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1, syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if errno != syscall.EINTR {
			return errno == syscall.EAGAIN
		}
	}
}
