package lb

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestStreamWrapsSocketsOnly(t *testing.T) {
	c, _ := tcpPair(t)
	if _, ok := newStream(c).(*stream); !ok {
		t.Fatalf("a TCP conn should get a raw stream, got %T", newStream(c))
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if got := newStream(p1); got != io.ReadWriter(p1) {
		t.Fatalf("a conn without a socket should be used as is, got %T", got)
	}
}

func TestStreamReadErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(local, peer net.Conn)
		check func(err error) bool
	}{
		{"peer closed gives EOF", func(_, peer net.Conn) { peer.Close() },
			func(err error) bool { return err == io.EOF }},
		{"deadline passed gives a timeout", func(local, _ net.Conn) { local.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) },
			func(err error) bool {
				var ne net.Error
				return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
			}},
		{"local close gives ErrClosed", func(local, _ net.Conn) { time.AfterFunc(20*time.Millisecond, func() { local.Close() }) },
			func(err error) bool { return errors.Is(err, net.ErrClosed) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local, peer := tcpPair(t)
			rw := newStream(local)
			tt.setup(local, peer)
			n, err := rw.Read(make([]byte, 16))
			if n != 0 || !tt.check(err) {
				t.Fatalf("Read = %d, %v (%T)", n, err, err)
			}
		})
	}
}

func TestStreamWriteToClosedPeerFails(t *testing.T) {
	local, peer := tcpPair(t)
	peer.(*net.TCPConn).SetLinger(0) // reset, so the next writes see ECONNRESET/EPIPE
	peer.Close()
	rw := newStream(local)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = rw.Write(make([]byte, 64<<10))
		time.Sleep(time.Millisecond)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "write" {
		t.Fatalf("writing to a reset peer: err = %v, want a write OpError", err)
	}
}

// A write larger than the socket buffers must wait for the peer to read
// and still deliver every byte, while the same stream reads concurrently.
func TestStreamLargeWriteAndConcurrentRead(t *testing.T) {
	local, peer := tcpPair(t)
	rw := newStream(local)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	echo := []byte("ping from the peer")

	var wg sync.WaitGroup
	var got []byte
	var peerErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(50 * time.Millisecond) // let the send buffer fill first
		if _, err := peer.Write(echo); err != nil {
			peerErr = err
			return
		}
		got, peerErr = io.ReadAll(io.LimitReader(peer, int64(len(payload))))
	}()
	var readBack []byte
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		readBack = make([]byte, len(echo))
		_, readErr = io.ReadFull(rw, readBack)
	}()

	n, err := rw.Write(payload)
	if err != nil || n != len(payload) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(payload))
	}
	wg.Wait()
	if peerErr != nil || !bytes.Equal(got, payload) {
		t.Fatalf("peer got %d bytes (err %v), want the %d written", len(got), peerErr, len(payload))
	}
	if readErr != nil || !bytes.Equal(readBack, echo) {
		t.Fatalf("concurrent read = %q, %v", readBack, readErr)
	}
}
