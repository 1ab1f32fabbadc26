package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/httpguard"
)

// TestServeBoundsSlowClients: an idle keep-alive connection is closed, and
// an unauthenticated client trickling a body is cut, by the real listener.
func TestServeBoundsSlowClients(t *testing.T) {
	srv, err := New(context.Background(), Config{DataDir: t.TempDir(), Log: quietLog(), IdleTimeout: 300 * time.Millisecond,
		BodyLimits: &httpguard.Limits{Idle: time.Second, Grace: 300 * time.Millisecond, MinRate: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, ln)
	closedWithin := func(conn net.Conn, d time.Duration) bool {
		_ = conn.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, conn)
		return err == nil // EOF: the server closed it; a timeout is an error
	}

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	if !closedWithin(conn, 3*time.Second) {
		t.Error("an idle keep-alive connection stayed open")
	}

	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprint(slow, "POST /hooks/github/nope HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for range 1000 {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := slow.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	b, _ := io.ReadAll(io.LimitReader(slow, 4096))
	if time.Since(start) > 5*time.Second || !strings.Contains(string(b), "HTTP/1.1") {
		t.Errorf("a trickled body held the connection for %v (got %q)", time.Since(start), b)
	}
}
