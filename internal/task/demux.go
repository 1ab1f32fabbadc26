package task

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// copyBuffers lends demux its buffer only while a frame is copied.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// demux splits the engine's multiplexed log stream (frames of an 8-byte
// header, whose first byte names the stream and last four the size, then
// the payload) into stdout and stderr. It does what stdcopy.StdCopy does
// but holds no buffer while it waits: StdCopy keeps 32 KiB per stream for
// as long as it follows one, 16 MiB at 500 tasks followed.
func demux(stdout, stderr io.Writer, r io.Reader) error {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		size := int64(binary.BigEndian.Uint32(hdr[4:]))
		var w io.Writer
		switch hdr[0] {
		case 0, 1: // stdin (never sent for logs) and stdout
			w = stdout
		case 2:
			w = stderr
		case 3: // the engine's own error, ending the stream
			msg, _ := io.ReadAll(io.LimitReader(r, min(size, 64<<10)))
			return fmt.Errorf("the engine's log stream: %s", msg)
		default:
			return fmt.Errorf("the engine's log stream: unknown stream %d", hdr[0])
		}
		buf := copyBuffers.Get().(*[]byte)
		n, err := io.CopyBuffer(w, io.LimitReader(r, size), *buf)
		copyBuffers.Put(buf)
		if err != nil {
			return err
		}
		if n < size {
			return io.ErrUnexpectedEOF
		}
	}
}
