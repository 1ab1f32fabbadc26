package lb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fastPathBackend exercises the shapes of HTTP/1.1 exchange a proxy meets.
func fastPathBackend(t *testing.T) *httptest.Server {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo": // the request body's length and sha256, and how it came
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x te=%v xff=%s", n, h.Sum(nil), r.TransferEncoding, r.Header.Get("X-Forwarded-For"))
		case "/stream": // chunked, flushed line by line, waiting for the go-ahead
			fl := w.(http.Flusher)
			fmt.Fprintln(w, "first")
			fl.Flush()
			time.Sleep(300 * time.Millisecond)
			fmt.Fprintln(w, "second")
		case "/big":
			w.Write(bytes.Repeat([]byte("x"), 3<<20))
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/hop": // a hop-by-hop header named by Connection must not reach the client
			w.Header().Set("Connection", "X-Secret")
			w.Header().Set("X-Secret", "hop")
			w.Header().Set("X-Kept", "end")
			fmt.Fprint(w, "hop")
		case "/hugehead":
			w.Header().Set("X-Huge", strings.Repeat("h", 40<<10))
		case "/unframed": // no length and no chunking: the body ends when the target closes
			conn, rw, _ := http.NewResponseController(w).Hijack()
			rw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
			rw.Flush()
			conn.Close()
		case "/seen":
			fmt.Fprintf(w, "proto=%s conn=%q upgrade=%q", r.Proto, r.Header.Get("Connection"), r.Header.Get("Upgrade"))
		default:
			fmt.Fprint(w, "ok")
		}
	}))
	// The target closes idle keep-alive connections quickly, as Node's
	// default (5 s) does, only faster.
	s.Config.IdleTimeout = 100 * time.Millisecond
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func fastPathBalancer(t *testing.T, targets ...string) (*Balancer, string) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b := New(ctx, quiet())
	t.Cleanup(func() { b.Close(context.Background()) })
	addr := freeAddr(t)
	if err := b.Apply(Config{TargetGroups: map[string]TargetGroup{"tg": {Targets: targets, HealthCheck: fastCheck}},
		Listeners: map[string]Listener{"web": {Addr: addr, Routes: []Route{{"tg", 100}}}}}); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, b, "tg", len(targets))
	return b, addr
}

// rawExchange sends raw bytes on one connection and reads one response.
func rawExchange(t *testing.T, br *bufio.Reader, conn net.Conn, req string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	method := strings.Fields(req)[0]
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%q: body: %v", req, err)
	}
	return resp, string(body)
}

func TestHTTP1FastPath(t *testing.T) {
	_, addr := fastPathBalancer(t, hostOf(fastPathBackend(t)))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, larger than any buffer
	sum := sha256.Sum256(payload)
	cases := []struct {
		name, req        string
		status           int
		body, header     string
		wantClose        bool
		absentHeader     string
		bodyPrefixOnly   bool
		bodyLen          int
		sleepBeforeAfter time.Duration
	}{
		{name: "get", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: "ok"},
		{name: "post with a 1 MiB body", req: fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nContent-Length: %d\r\n\r\n%s", len(payload), payload),
			status: 200, body: fmt.Sprintf("%d %x te=[] xff=10.0.0.1, 127.0.0.1", len(payload), sum)},
		{name: "chunked response", req: "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: "first\nsecond\n"},
		{name: "3 MiB response", req: "GET /big HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, bodyLen: 3 << 20},
		{name: "head", req: "HEAD /big HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: ""},
		{name: "no content", req: "GET /nocontent HTTP/1.1\r\nHost: a\r\n\r\n", status: 204, body: ""},
		{name: "response head too large", req: "GET /hugehead HTTP/1.1\r\nHost: a\r\n\r\n", status: 502, bodyPrefixOnly: true, body: "load balancer: response head too large"},
		{name: "hop-by-hop", req: "GET /hop HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: "hop", header: "X-Kept", absentHeader: "X-Secret"},
		// The target has closed the pooled connection (of the request
		// before) by now: a POST must not be lost on it.
		{name: "post after the target closed the idle connection", sleepBeforeAfter: 300 * time.Millisecond,
			req: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", status: 200, bodyPrefixOnly: true, body: "5 2cf24dba"},
		{name: "get after the target closed the idle connection", sleepBeforeAfter: 300 * time.Millisecond,
			req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: "ok"},
		// Handed to net/http, on the same connection.
		{name: "chunked request body", req: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			status: 200, bodyPrefixOnly: true, body: "5 2cf24dba"},
		{name: "after the hand-off", req: "GET /seen HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: `proto=HTTP/1.1 conn="" upgrade=""`},
		{name: "connection close", req: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", status: 200, body: "ok", wantClose: true},
	}
	for _, c := range cases {
		time.Sleep(c.sleepBeforeAfter)
		resp, body := rawExchange(t, br, conn, c.req)
		if resp.StatusCode != c.status {
			t.Fatalf("%s: status %d, want %d (%s)", c.name, resp.StatusCode, c.status, body)
		}
		switch {
		case c.bodyLen > 0:
			if len(body) != c.bodyLen {
				t.Fatalf("%s: %d bytes, want %d", c.name, len(body), c.bodyLen)
			}
		case c.bodyPrefixOnly:
			if !strings.HasPrefix(body, c.body) {
				t.Fatalf("%s: body %q, want prefix %q", c.name, body, c.body)
			}
		case body != c.body:
			t.Fatalf("%s: body %q, want %q", c.name, body, c.body)
		}
		if c.header != "" && resp.Header.Get(c.header) == "" || c.absentHeader != "" && resp.Header.Get(c.absentHeader) != "" {
			t.Fatalf("%s: headers %v", c.name, resp.Header)
		}
		if resp.Close != c.wantClose {
			t.Fatalf("%s: close %v, want %v", c.name, resp.Close, c.wantClose)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("the connection stayed open after Connection: close: %v", err)
	}
	// A body delimited by the target closing ends the client's connection too.
	conn2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	conn2.SetDeadline(time.Now().Add(5 * time.Second))
	resp, body := rawExchange(t, bufio.NewReader(conn2), conn2, "GET /unframed HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 200 || body != "until close" || !resp.Close {
		t.Fatalf("unframed: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	// Hand-offs that start a connection: HTTP/1.0, and a head net/http must judge.
	for _, c := range []struct{ req, want string }{
		{"GET /seen HTTP/1.0\r\nHost: a\r\n\r\n", "proto=HTTP/1.1"},
		{"GET /seen HTTP/1.1\nHost: a\n\n", "proto=HTTP/1.1"},
	} {
		conn3, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn3.SetDeadline(time.Now().Add(5 * time.Second))
		resp, body := rawExchange(t, bufio.NewReader(conn3), conn3, c.req)
		conn3.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(body, c.want) {
			t.Fatalf("%q: %d %q", c.req, resp.StatusCode, body)
		}
	}
}

// TestStreamedResponseIsNotHeldBack: a line the target flushes reaches the
// client before the rest of the response exists.
func TestStreamedResponseIsNotHeldBack(t *testing.T) {
	_, addr := fastPathBalancer(t, hostOf(fastPathBackend(t)))
	start := time.Now()
	resp, err := http.Get("http://" + addr + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q %v", line, err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Fatalf("the first line took %v: it waited for the second", d)
	}
}

// TestShutdownFinishesRequestsInFlight: closing the balancer lets a request
// already sent finish and closes idle connections.
func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	b, addr := fastPathBalancer(t, hostOf(fastPathBackend(t)))
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	done := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/stream")
		if err != nil {
			done <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(body)
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	b.Close(ctx)
	if got := <-done; got != "first\nsecond\n" {
		t.Fatalf("request in flight during shutdown: %q", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v: it waited on the idle connection", d)
	}
	idle.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection after shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("the listener still accepts after shutdown")
	}
}

// TestClientTimeouts: a head that stalls is cut off after the header
// timeout; a keep-alive connection waiting between requests is not, until
// the idle timeout.
func TestClientTimeouts(t *testing.T) {
	oldHeader, oldIdle := headerTimeout, idleTimeout
	headerTimeout, idleTimeout = 300*time.Millisecond, 1500*time.Millisecond
	t.Cleanup(func() { headerTimeout, idleTimeout = oldHeader, oldIdle })
	_, addr := fastPathBalancer(t, hostOf(fastPathBackend(t)))
	closedAfter := func(conn net.Conn, br *bufio.Reader) time.Duration {
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("waiting connection: %v, want EOF", err)
		}
		return time.Since(start)
	}
	for _, c := range []struct {
		name, before, partial string
		min, max              time.Duration
	}{
		{"stalled first head", "", "GET / HTTP/1.1\r\nHost: a\r\n", 200 * time.Millisecond, time.Second},
		{"stalled second head", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\nHo", 200 * time.Millisecond, time.Second},
		{"idle between requests", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "", 1200 * time.Millisecond, 3 * time.Second},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		if c.before != "" {
			if resp, body := rawExchange(t, br, conn, c.before); resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("%s: %d %q", c.name, resp.StatusCode, body)
			}
		}
		io.WriteString(conn, c.partial)
		if d := closedAfter(conn, br); d < c.min || d > c.max {
			t.Fatalf("%s: closed after %v, want %v to %v", c.name, d, c.min, c.max)
		}
		conn.Close()
	}
}

// rawListener serves each connection to a loopback port with serve, which
// closes it, until the test ends.
func rawListener(t *testing.T, serve func(net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(conn)
		}
	}()
	return ln.Addr().String()
}

// rawTarget answers /health properly and every other path with the raw
// bytes responses names, then closes the connection.
func rawTarget(t *testing.T, responses map[string]string) string {
	return rawListener(t, func(conn net.Conn) {
		defer conn.Close()
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/health" {
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				continue
			}
			io.WriteString(conn, responses[req.URL.Path])
			return
		}
	})
}

// TestTargetsThatBreakHTTP: a target's malformed head is a 502 and never
// reaches the client; a body cut short or badly framed closes the client's
// connection instead of passing for a whole response.
func TestTargetsThatBreakHTTP(t *testing.T) {
	target := rawTarget(t, map[string]string{
		"/garbage":  "SMTP ready\r\n\r\n",
		"/bare-lf":  "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"/split":    "HTTP/1.1 200 OK\nSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok",
		"/badlen":   "HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok",
		"/gzip-te":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"/short":    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part",
		"/badchunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
	})
	_, addr := fastPathBalancer(t, target)
	for _, path := range []string{"/garbage", "/bare-lf", "/split", "/badlen", "/gzip-te"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		resp, body := rawExchange(t, bufio.NewReader(conn), conn, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		conn.Close()
		if resp.StatusCode != 502 || resp.Header.Get("Set-Cookie") != "" || !strings.Contains(body, "malformed response from target") {
			t.Fatalf("%s: %d %v %q, want a 502 of the load balancer's own", path, resp.StatusCode, resp.Header, body)
		}
	}
	for _, path := range []string{"/short", "/badchunk"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		// Whether the head got out before the break or not, the client must
		// see an error, never a complete response.
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
		}
		conn.Close()
		if err == nil {
			t.Fatalf("%s: a complete %d response: the client must see it cut short", path, resp.StatusCode)
		}
	}
}

// What net/http refuses, the fast path does not pass on: the hand-off
// answers 400 and the target never sees the request.
func TestMalformedRequestsAreRefusedNotForwarded(t *testing.T) {
	// A lax target that answers any head, so a request passed on shows up
	// here instead of being refused by the target's own net/http.
	var reached atomic.Int64
	target := rawListener(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			for { // the rest of the head
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == "\r\n" {
					break
				}
			}
			if !strings.Contains(line, fastCheck.Path) {
				reached.Add(1)
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	_, addr := fastPathBalancer(t, target)
	for _, req := range []string{
		"GET /% HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a%2 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /\t HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\nhi",
		"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		resp, body := rawExchange(t, bufio.NewReader(conn), conn, req)
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: status %d (%s), want 400", req, resp.StatusCode, body)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the target saw %d malformed requests", n)
	}
	// A well-formed request on the same listener still goes through.
	resp, err := http.Get("http://" + addr + "/a%20b?q=%zz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || reached.Load() != 1 {
		t.Fatalf("well-formed request: %d, target reached %d times", resp.StatusCode, reached.Load())
	}
}
