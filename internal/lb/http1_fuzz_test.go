package lb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// FuzzParseRequest holds the fast path to net/http's reading of HTTP/1.1:
// a head the fast path takes must be one net/http takes too, with the same
// method, body length and connection handling, and the head it sends on
// must read back with the same target and host plus the forwarding headers.
// What the fast path declines goes to net/http anyway (errHandOff).
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /echo?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nTE: trailers\r\n\r\n",
		"PUT /p HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\nConnection: keep-alive, close\r\nForwarded: for=x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 05\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
		"GET /%zz?q=%zz HTTP/1.1\r\nHost: a\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		head, ok := fuzzHead(data)
		if !ok {
			return
		}
		c := &clientConn{ip: "192.0.2.1"}
		req, err := c.parseRequest(head)
		if err != nil {
			return
		}
		in, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("fast path took a head net/http refuses (%v):\n%q", err, head)
		}
		if !httpguts.ValidHostHeader(in.Host) { // what http.Server adds to ReadRequest
			t.Fatalf("fast path took a Host net/http's server refuses:\n%q", head)
		}
		if in.Method != string(req.method) || in.ContentLength != req.contentLength || in.Close != req.close {
			t.Fatalf("fast path read %q length %d close %v; net/http %q length %d close %v:\n%q",
				req.method, req.contentLength, req.close, in.Method, in.ContentLength, in.Close, head)
		}
		out, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(c.head)))
		if err != nil {
			t.Fatalf("net/http refuses the head sent on (%v):\n%q\nfrom %q", err, c.head, head)
		}
		if out.Method != in.Method || out.RequestURI != in.RequestURI || out.Host != in.Host || out.ContentLength != in.ContentLength {
			t.Fatalf("the head sent on changed the request:\n%q\nfrom %q", c.head, head)
		}
		if out.Header.Get("X-Forwarded-Proto") != "http" || out.Header.Get("X-Forwarded-Host") != in.Host {
			t.Fatalf("forwarding headers missing:\n%q", c.head)
		}
		xff := out.Header.Values("X-Forwarded-For")
		if len(xff) != 1 || !bytes.HasSuffix([]byte(xff[0]), []byte("192.0.2.1")) {
			t.Fatalf("X-Forwarded-For %q:\n%q", xff, c.head)
		}
	})
}

// FuzzParseResponse holds the fast path's reading of a target's response
// head to net/http's: what it takes, net/http takes with the same status,
// body framing and connection reuse.
func FuzzParseResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 304\r\nContent-Length: 7\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		head, ok := fuzzHead(data)
		if !ok {
			return
		}
		r, err := parseResponse(head, false)
		if err != nil {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
		if err != nil {
			t.Fatalf("fast path took a response head net/http refuses (%v):\n%q", err, head)
		}
		if resp.StatusCode != r.status {
			t.Fatalf("status %d, net/http %d:\n%q", r.status, resp.StatusCode, head)
		}
		switch {
		case r.length == chunked:
			if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
				t.Fatalf("fast path reads chunked, net/http %v:\n%q", resp.TransferEncoding, head)
			}
		case r.length == untilClose:
			if resp.ContentLength != -1 || !resp.Close {
				t.Fatalf("fast path reads until close, net/http length %d close %v:\n%q", resp.ContentLength, resp.Close, head)
			}
		case resp.ContentLength != r.length:
			t.Fatalf("length %d, net/http %d:\n%q", r.length, resp.ContentLength, head)
		}
		if r.keepAlive == resp.Close {
			t.Fatalf("keep-alive %v, net/http close %v:\n%q", r.keepAlive, resp.Close, head)
		}
	})
}

// FuzzChunked holds copyChunked to net/http's reading of a chunked body
// (its chunked reader, then its trailer reader): a body copyChunked takes,
// net/http takes too, ending at the same byte, and copyChunked passes it on
// unchanged; a body net/http takes without trailers, copyChunked takes. A
// proxy that ends a body elsewhere than the target meant reads the rest as
// the next response.
func FuzzChunked(f *testing.F) {
	for _, seed := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext=1\r\nhello\r\n0;x=\"y\"\r\n\r\n",
		"A\r\n0123456789\r\na \t\r\n0123456789\r\n0\r\n\r\n",
		"5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other:  a b \r\n\r\nHTTP/1.1 200 OK\r\n",
		"0000000000000005\r\nhello\r\n0\r\n\r\n",
		"+5\r\nhello\r\n0\r\n\r\n",
		"-0\r\n\r\n",
		"00000000000000005\r\nhello\r\n0\r\n\r\n",
		"5\r\nhelloXX0\r\n\r\n",
		"5;a\rb\r\nhello\r\n0\r\n\r\n",
		"5\nhello\n0\n\n",
		"5 ;a\r\nhello\r\n0\r\n\r\n",
		"zz\r\nhello\r\n0\r\n\r\n",
		"0\r\nX-Sum: 1\r\n 2\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		in := bytes.NewReader(data)
		br := bufio.NewReaderSize(in, targetBufSize)
		err := copyChunked(w, br)
		w.Flush()
		took := len(data) - in.Len() - br.Buffered()

		// net/http, with a buffer that holds all of data, so its trailer
		// reader's look-ahead is not what limits it.
		refIn := bytes.NewReader(data)
		ref := bufio.NewReaderSize(refIn, len(data)+16)
		body, refErr := io.ReadAll(httputil.NewChunkedReader(ref))
		trailers := false
		if refErr == nil {
			trailers, refErr = readTrailer(ref)
		}
		refTook := len(data) - refIn.Len() - ref.Buffered()

		if err == nil {
			if refErr != nil {
				t.Fatalf("copyChunked took a body net/http refuses (%v):\n%q", refErr, data)
			}
			if took != refTook {
				t.Fatalf("copyChunked ended the body after %d bytes, net/http after %d:\n%q", took, refTook, data)
			}
			if !bytes.Equal(out.Bytes(), data[:took]) {
				t.Fatalf("copyChunked passed on %q for %q", out.Bytes(), data[:took])
			}
			// What a client decodes from what was passed on is the body.
			if got, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(out.Bytes()))); err != nil || !bytes.Equal(got, body) {
				t.Fatalf("passed on a body of %q (%v), net/http read %q:\n%q", got, err, body, data)
			}
			return
		}
		if refErr == nil && !trailers {
			t.Fatalf("copyChunked refused a body net/http takes (%v):\n%q", err, data)
		}
	})
}

// readTrailer reads a chunked body's trailer section as net/http's body
// reader does; trailers tells whether there was any.
func readTrailer(r *bufio.Reader) (trailers bool, err error) {
	buf, err := r.Peek(2)
	if bytes.Equal(buf, crlf) {
		r.Discard(2)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	all, _ := r.Peek(r.Buffered())
	if !bytes.Contains(all, crlfcrlf) {
		return true, errors.New("trailer without an end")
	}
	_, err = textproto.NewReader(r).ReadMIMEHeader()
	return true, err
}

// fuzzHead is the head the proxy would read from data, if there is one.
func fuzzHead(data []byte) ([]byte, bool) {
	head, err := peekHead(bufio.NewReaderSize(bytes.NewReader(data), 4096))
	return head, err == nil
}
