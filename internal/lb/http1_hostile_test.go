package lb

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// smuggledResponse is what a poisoning target writes after a response: a
// whole response of its own, so a proxy that reads it as the next
// request's answer gives that request's client a stranger's response, and
// every later client on the connection the one before theirs.
const smuggledResponse = "HTTP/1.1 200 OK\r\nX-Id: smuggled\r\nContent-Length: 8\r\n\r\nSMUGGLED"

// poisonTarget answers /health, GET /id/<id> with "id <id>" and X-Id:
// <id>, and /poison/<id> the same way but then, in a second write a moment
// later, smuggledResponse: a body on a HEAD response, or bytes past a
// Content-Length body. The poisoners are held until n have arrived, so
// each sits on a target connection of its own and no other request can
// take one before its stray bytes are there; written is done when every
// poisoner has written them.
func poisonTarget(t *testing.T, n int) (addr string, written *sync.WaitGroup) {
	written = new(sync.WaitGroup)
	written.Add(n)
	var arrived atomic.Int32
	release := make(chan struct{})
	addr = rawListener(t, func(conn net.Conn) {
		defer conn.Close()
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			id := path.Base(req.URL.Path)
			body := "id " + id
			switch {
			case req.URL.Path == fastCheck.Path:
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			case strings.HasPrefix(req.URL.Path, "/poison/"):
				if arrived.Add(1) == int32(n) {
					close(release)
				}
				select {
				case <-release:
				case <-time.After(5 * time.Second):
				}
				if req.Method == http.MethodHead {
					fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nX-Id: %s\r\nContent-Length: %d\r\n\r\n", id, len(smuggledResponse))
				} else {
					fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nX-Id: %s\r\nContent-Length: %d\r\n\r\n%s", id, len(body), body)
				}
				// Late enough that the proxy has read the response and
				// pooled the connection.
				time.Sleep(5 * time.Millisecond)
				io.WriteString(conn, smuggledResponse)
				written.Done()
			default:
				fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nX-Id: %s\r\nContent-Length: %d\r\n\r\n%s", id, len(body), body)
			}
		}
	})
	return addr, written
}

// TestStrayTargetBytesNeverReachAnotherClient: a target connection with
// bytes waiting after its last response is not used again, so no client
// ever gets a response that was not its own.
func TestStrayTargetBytesNeverReachAnotherClient(t *testing.T) {
	const poisoners, sequential, concurrent = 8, 10, 30
	for _, c := range []struct{ name, method string }{
		{"body on a HEAD response", http.MethodHead},
		{"bytes after a Content-Length body", http.MethodGet},
	} {
		t.Run(c.name, func(t *testing.T) {
			target, written := poisonTarget(t, poisoners)
			_, addr := fastPathBalancer(t, target)
			// Every client is a user of its own: a connection per request.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			check := func(method, id string) {
				req, _ := http.NewRequest(method, "http://"+addr+"/"+id, nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("%s %s: %v", method, id, err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := "id " + path.Base(id)
				if method == http.MethodHead {
					want = ""
				}
				if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Id") != path.Base(id) || string(body) != want {
					t.Errorf("%s %s: %d X-Id %q body %q (%v), want its own response", method, id, resp.StatusCode, resp.Header.Get("X-Id"), body, err)
				}
			}
			var wg sync.WaitGroup
			for i := range poisoners {
				wg.Go(func() { check(c.method, fmt.Sprintf("poison/p%d", i)) })
			}
			wg.Wait()
			written.Wait() // the stray bytes wait on every connection the poisoners used
			for i := range sequential {
				check(http.MethodGet, fmt.Sprintf("id/s%d", i))
			}
			for i := range concurrent {
				wg.Go(func() { check(http.MethodGet, fmt.Sprintf("id/c%d", i)) })
			}
			wg.Wait()
		})
	}
}

// TestCopyChunked: a chunked body is taken exactly as net/http's chunked
// reader takes it, and passed through unchanged up to its end; anything
// net/http refuses is refused.
func TestCopyChunked(t *testing.T) {
	const next = "HTTP/1.1 200 OK\r\n" // what follows the body on the connection
	// net/http refuses a chunk-size line of 4 KiB or more.
	longExt := "1;" + strings.Repeat("e", maxChunkLine) + "\r\nx\r\n0\r\n\r\n"
	// net/http allows 16 bytes of overhead per chunk plus twice its data.
	chatty := strings.Repeat("1;"+strings.Repeat("e", 60)+"\r\nx\r\n", 400) + "0\r\n\r\n"
	for _, c := range []struct {
		name, body string
		ok         bool
	}{
		{"one chunk", "5\r\nhello\r\n0\r\n\r\n", true},
		{"extension", "5;ext=1\r\nhello\r\n0;last\r\n\r\n", true},
		{"quoted extension", "5;ext=\"a b\"\r\nhello\r\n0\r\n\r\n", true},
		{"uppercase hex", "A\r\n0123456789\r\n0\r\n\r\n", true},
		{"lowercase hex", "a\r\n0123456789\r\n0\r\n\r\n", true},
		{"trailing whitespace", "5 \t\r\nhello\r\n0\r\n\r\n", true},
		{"16 digits", "0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n", true},
		{"trailers", "5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other: a b\r\n\r\n", true},
		{"empty body", "0\r\n\r\n", true},

		{"plus sign", "+5\r\nhello\r\n0\r\n\r\n", false},
		{"minus zero", "-0\r\n\r\n", false},
		{"negative", "-5\r\nhello\r\n0\r\n\r\n", false},
		{"17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", false},
		{"beyond int64", "8000000000000000\r\nhello\r\n0\r\n\r\n", false},
		{"no CRLF after the data", "5\r\nhelloXX0\r\n\r\n", false},
		{"bare LF after the data", "5\r\nhello\n0\r\n\r\n", false},
		{"bare CR in an extension", "5;a\rb\r\nhello\r\n0\r\n\r\n", false},
		{"bare CR in the size", "5\r\r\nhello\r\n0\r\n\r\n", false},
		{"bare LF size line", "5\nhello\r\n0\r\n\r\n", false},
		{"non-hex", "zz\r\nhello\r\n0\r\n\r\n", false},
		{"trailing garbage", "5x\r\nhello\r\n0\r\n\r\n", false},
		{"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", false},
		{"underscore", "0_5\r\nhello\r\n0\r\n\r\n", false},
		{"leading space", " 5\r\nhello\r\n0\r\n\r\n", false},
		{"space before extension", "5 ;a\r\nhello\r\n0\r\n\r\n", false},
		{"empty size", "\r\nhello\r\n0\r\n\r\n", false},
		{"extension only", ";a\r\nhello\r\n0\r\n\r\n", false},
		{"size line too long", longExt, false},
		{"too much overhead", chatty, false},
		{"trailer without a colon", "0\r\nX-Sum\r\n\r\n", false},
		{"folded trailer", "0\r\nX-Sum: 1\r\n 2\r\n\r\n", false},
		{"bare LF in trailers", "0\r\nX-Sum: 1\n\r\n", false},
		{"cut short in the data", "5\r\nhel", false},
		{"cut short in the trailers", "0\r\nX-Sum: 1\r\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			w := bufio.NewWriter(&out)
			src := bufio.NewReaderSize(strings.NewReader(c.body+next), targetBufSize)
			err := copyChunked(w, src)
			w.Flush()
			if !c.ok {
				if err == nil {
					t.Fatalf("%q taken, want refused", c.body)
				}
				return
			}
			if err != nil {
				t.Fatalf("%q: %v", c.body, err)
			}
			if out.String() != c.body {
				t.Fatalf("passed on %q, want %q", out.String(), c.body)
			}
			if rest, _ := io.ReadAll(src); string(rest) != next {
				t.Fatalf("left %q after the body, want %q", rest, next)
			}
		})
	}
}

// TestBadChunkingFromATargetClosesTheClientConnection: a chunked response
// whose framing net/http refuses never passes for a whole response: the
// client's connection is closed.
func TestBadChunkingFromATargetClosesTheClientConnection(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	bad := map[string]string{
		"/plus":     "+5\r\nhello\r\n0\r\n\r\n",
		"/minus":    "5\r\nhello\r\n-0\r\n\r\n",
		"/17digits": "00000000000000005\r\nhello\r\n0\r\n\r\n",
		"/nocrlf":   "5\r\nhelloXX0\r\n\r\n",
		"/cr-ext":   "5;a\rb\r\nhello\r\n0\r\n\r\n",
	}
	good := map[string]string{
		"/ext":      "5;ext=1\r\nhello\r\n0\r\n\r\n",
		"/upper":    "A\r\n0123456789\r\n0\r\n\r\n",
		"/trailers": "5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n",
	}
	responses := map[string]string{}
	for p, body := range bad {
		responses[p] = head + body
	}
	for p, body := range good {
		responses[p] = head + body
	}
	_, addr := fastPathBalancer(t, rawTarget(t, responses))
	for p := range bad {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(conn, "GET "+p+" HTTP/1.1\r\nHost: a\r\n\r\n")
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil {
			t.Errorf("%s: the client's connection stayed open after %q (%v)", p, got, err)
		}
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	for p, want := range map[string]string{"/ext": "hello", "/upper": "0123456789", "/trailers": "hello"} {
		resp, body := rawExchange(t, br, conn, "GET "+p+" HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp.StatusCode != 200 || body != want || resp.Close {
			t.Fatalf("%s: %d %q close=%v, want %q on a kept connection", p, resp.StatusCode, body, resp.Close, want)
		}
		if p == "/trailers" && resp.Trailer.Get("X-Sum") != "1" {
			t.Fatalf("%s: trailers %v", p, resp.Trailer)
		}
	}
}

// TestMalformedChunkedRequestBodiesAre400: a chunked request body (the
// net/http path reads those) that net/http refuses is the client's fault:
// 400 and the connection closed, not a 502 that counts against the target.
func TestMalformedChunkedRequestBodiesAre400(t *testing.T) {
	b, addr := fastPathBalancer(t, hostOf(fastPathBackend(t)))
	for _, c := range []struct {
		name, body string
		status     int
	}{
		{"plus sign", "+5\r\nhello\r\n0\r\n\r\n", 400},
		{"minus zero", "-0\r\n\r\n", 400},
		{"17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", 400},
		{"no CRLF after the data", "5\r\nhelloXX0\r\n\r\n", 400},
		{"bare CR in an extension", "5;a\rb\r\nhello\r\n0\r\n\r\n", 400},
		{"non-hex", "zz\r\nhello\r\n0\r\n\r\n", 400},
		{"extension", "5;ext=1\r\nhello\r\n0\r\n\r\n", 200},
		{"uppercase hex", "A\r\n0123456789\r\n0\r\n\r\n", 200},
		{"trailers", "5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n", 200},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(conn)
		resp, body := rawExchange(t, br, conn, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"+c.body)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d %q, want %d", c.name, resp.StatusCode, body, c.status)
		}
		if c.status == 400 {
			if _, err := br.ReadByte(); !resp.Close || err != io.EOF {
				t.Errorf("%s: close=%v, then %v: the connection must close", c.name, resp.Close, err)
			}
		}
		conn.Close()
	}
	if errs := b.State(time.Minute).TargetGroups["tg"].Stats.Errors; errs != 0 {
		t.Errorf("%d 5xx counted against the target group for the client's bad bodies", errs)
	}
}

// TestUnderscoreHeadersAreDropped: a header name with '_' never reaches a
// target, on the fast path or the net/http one: CGI-style servers read
// Content_Length as Content-Length, and X_Forwarded_For as the header the
// proxy sets.
func TestUnderscoreHeadersAreDropped(t *testing.T) {
	seen := make(chan http.Header, 8)
	target := rawListener(t, func(conn net.Conn) {
		defer conn.Close()
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if req.URL.Path != fastCheck.Path {
				seen <- req.Header
			}
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	_, addr := fastPathBalancer(t, target)
	const sneaky = "Content_Length: 5\r\nTransfer_Encoding: chunked\r\nX_Forwarded_For: 6.6.6.6\r\nx_other: 1\r\nX-Kept: 1\r\n"
	for _, c := range []struct{ name, req string }{
		{"fast path", "GET / HTTP/1.1\r\nHost: a\r\n" + sneaky + "\r\n"},
		{"net/http path, HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\n" + sneaky + "\r\n"},
		{"net/http path, chunked body", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n" + sneaky + "\r\n5\r\nhello\r\n0\r\n\r\n"},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		resp, body := rawExchange(t, bufio.NewReader(conn), conn, c.req)
		conn.Close()
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%s: %d %q", c.name, resp.StatusCode, body)
		}
		var h http.Header
		select {
		case h = <-seen:
		case <-time.After(time.Second):
			t.Fatalf("%s: the target saw no request", c.name)
		}
		if h.Get("X-Kept") != "1" {
			t.Errorf("%s: X-Kept lost: %v", c.name, h)
		}
		for name := range h {
			if strings.Contains(name, "_") {
				t.Errorf("%s: the target saw %s: %v", c.name, name, h)
			}
		}
	}
}
