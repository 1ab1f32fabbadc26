package httpguard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestGuardCutsSlowBodies sends bodies at several paces over a raw
// connection to a real server: a prompt one is read whole; one that
// trickles (a byte per 100 ms, as a slowloris does) or stalls is cut, and
// the connection closes soon after the limit, not when the client pleases.
func TestGuardCutsSlowBodies(t *testing.T) {
	l := Limits{Idle: 400 * time.Millisecond, Grace: 300 * time.Millisecond, MinRate: 1000}
	got := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.Guard(w, r)
		_, err := io.Copy(io.Discard, r.Body)
		got <- err
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	for _, c := range []struct {
		name    string
		size    int
		every   time.Duration
		chunk   int
		stall   bool
		wantErr error
	}{
		{"prompt body", 64 << 10, 0, 64 << 10, false, nil},
		{"trickle", 1000, 100 * time.Millisecond, 1, false, ErrTooSlow},
		{"stall", 1000, 0, 10, true, nil}, // the idle deadline: a timeout error, not ErrTooSlow
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", c.size)
			start := time.Now()
			go func() {
				for sent := 0; sent < c.size; sent += c.chunk {
					if _, err := conn.Write([]byte(strings.Repeat("x", c.chunk))); err != nil {
						return
					}
					if c.stall {
						return
					}
					time.Sleep(c.every)
				}
			}()
			var readErr error
			select {
			case readErr = <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("the handler was still reading after 5 s")
			}
			switch {
			case c.name == "prompt body" && readErr != nil:
				t.Fatalf("a prompt body failed: %v", readErr)
			case c.wantErr != nil && !errors.Is(readErr, c.wantErr):
				t.Fatalf("read error %v, want %v", readErr, c.wantErr)
			case c.stall && readErr == nil:
				t.Fatal("a stalled body was read to the end")
			}
			if c.name != "prompt body" {
				if time.Since(start) > 2*time.Second {
					t.Errorf("cut after %v", time.Since(start))
				}
				// The server closes the connection: reading it ends.
				_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, err := io.Copy(io.Discard, bufio.NewReader(conn)); err != nil {
					t.Errorf("the connection stayed open: %v", err)
				}
			}
		})
	}
}
