package lb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/slipway-dev/slipway/internal/httpguard"
)

// HTTP/2 requests through the fast path's target connections.
//
// net/http's HTTP/2 server keeps the protocol's defences (stream and header
// limits, flow control, rapid reset, CONTINUATION floods); what it hands
// the handler is forwarded here on the fast path's pooled HTTP/1.1 target
// connections, with its response parser, rather than through ReverseProxy
// and http.Transport, whose per-request goroutine hand-offs, channels and
// header maps cost more CPU than the HTTP/2 server itself. Requests this
// path does not take (a body of unknown length, which may stream both ways;
// request trailers; CONNECT; a target or host the fast path would refuse)
// stay with ReverseProxy.

// h2Exchange is the reusable state of one HTTP/2 request.
type h2Exchange struct {
	head []byte // the outbound request head

	// Of the current attempt:
	status    int
	wrote     bool // something (maybe only a 1xx) reached the client: no retry
	committed bool // the final response head reached the client
}

var h2Exchanges = sync.Pool{New: func() any { return &h2Exchange{head: make([]byte, 0, 1024)} }}

// serveH2 forwards an HTTP/2 request that rs routed to g. It reports false,
// having done nothing, for a request it does not take.
func (l *listener) serveH2(b *Balancer, w http.ResponseWriter, r *http.Request, rs *routeSet, g *group, overTLS bool) bool {
	reserveStack()
	x := h2Exchanges.Get().(*h2Exchange)
	// What the last request served through x left: a request that tries
	// no target must not take that one's response for its own.
	x.status, x.wrote, x.committed = 0, false, false
	defer func() {
		if cap(x.head) <= 8<<10 { // a rare huge head is not kept for every request after
			h2Exchanges.Put(x)
		}
	}()
	if !x.buildHead(r, overTLS) {
		return false
	}
	start := time.Now()
	ctx := r.Context()
	hsts := overTLS && rs.hsts
	var body *clientBody
	if r.ContentLength > 0 {
		// A trickling upload must not hold a target connection. (A request
		// without a body is not read: it needs no guard.)
		httpguard.Defaults.Guard(w, r)
		body = &clientBody{ReadCloser: r.Body}
	}
	idempotent := r.ContentLength == 0 && (r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions)
	g, err := b.tryTargets(l, rs, g, func(t *target) (bool, error) {
		t.inflight.Add(1)
		defer t.inflight.Add(-1)
		err := x.exchange(t, w, r, body, hsts, idempotent)
		// As on the fast path: the body is read only once a connection is
		// open, so any request may go on after a dial failure.
		return !x.wrote && ctx.Err() == nil && (isDialError(err) || idempotent), err
	})
	switch {
	case err == nil:
		g.stats.record(x.status, time.Since(start))
	case x.committed:
		g.stats.record(http.StatusBadGateway, time.Since(start))
		if ctx.Err() == nil {
			b.log.Warn("proxy error", "host", r.Host, "path", r.URL.Path, "err", err)
		}
		// Reset the stream, as ReverseProxy does: ending it normally would
		// pass a cut-short body off as whole.
		panic(http.ErrAbortHandler)
	case ctx.Err() != nil:
		g.stats.record(0, time.Since(start)) // the client went away; there is no one to answer
	case body != nil && body.failedWith(err):
		// The client's body could not be read: its fault, not the target's.
		g.stats.record(http.StatusBadRequest, time.Since(start))
		http.Error(w, "load balancer: request body: "+err.Error(), http.StatusBadRequest)
	case errors.Is(err, errNoTarget):
		g.stats.record(http.StatusServiceUnavailable, time.Since(start))
		http.Error(w, "load balancer: "+err.Error(), http.StatusServiceUnavailable)
	default:
		b.log.Warn("proxy error", "host", r.Host, "path", r.URL.Path, "err", err)
		g.stats.record(http.StatusBadGateway, time.Since(start))
		http.Error(w, "load balancer: "+err.Error(), http.StatusBadGateway)
	}
	return true
}

// buildHead writes the HTTP/1.1 request head for the target into x.head,
// or reports false for a request this path leaves to ReverseProxy. The
// HTTP/2 server has already refused connection-specific fields
// (Connection, Upgrade, Transfer-Encoding, TE other than "trailers"), moved
// Expect and Trailer out of the header and joined Cookie fields; what is
// left is checked as the fast path checks an HTTP/1.1 head, for the target
// reads it as one.
func (x *h2Exchange) buildHead(r *http.Request, overTLS bool) bool {
	target := r.RequestURI
	if r.ContentLength < 0 || r.Trailer != nil || !isToken(r.Method) || r.Method == http.MethodConnect ||
		len(target) == 0 || target[0] != '/' || !validTarget(target) || !httpguts.ValidHostHeader(r.Host) {
		return false
	}
	out := append(x.head[:0], r.Method...)
	out = append(out, ' ')
	out = append(out, target...)
	out = append(out, " HTTP/1.1\r\nHost: "...)
	out = append(out, r.Host...)
	out = append(out, "\r\n"...)
	var xff []string
	for name, values := range r.Header {
		switch name {
		case "Host", "Content-Length", "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
			"Transfer-Encoding", "Upgrade", "Trailer", "Expect", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto":
			continue
		case "X-Forwarded-For":
			xff = values
			continue
		}
		// Not a token: ":protocol", which extended CONNECT would set.
		if strings.IndexByte(name, '_') >= 0 || !isToken(name) {
			continue // see dropUnderscoreHeaders
		}
		for _, v := range values {
			if !validValue(v) {
				return false
			}
			out = append(out, name...)
			out = append(out, ": "...)
			out = append(out, v...)
			out = append(out, "\r\n"...)
		}
	}
	// As Go's transport: a length for any body, and an empty one for the
	// methods that expect a body.
	if r.ContentLength > 0 || r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, r.ContentLength, 10)
		out = append(out, "\r\n"...)
	}
	out = append(out, "X-Forwarded-For: "...)
	for _, v := range xff {
		if !validValue(v) {
			return false
		}
		out = append(out, v...)
		out = append(out, ", "...)
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	out = append(out, ip...)
	out = append(out, "\r\nX-Forwarded-Host: "...)
	out = append(out, r.Host...)
	if overTLS {
		out = append(out, "\r\nX-Forwarded-Proto: https\r\n\r\n"...)
	} else {
		out = append(out, "\r\nX-Forwarded-Proto: http\r\n\r\n"...)
	}
	x.head = out
	return true
}

// exchange sends the request to t and the response to the client, on a
// pooled connection or, failing that, a new one.
func (x *h2Exchange) exchange(t *target, w http.ResponseWriter, r *http.Request, body *clientBody, hsts, idempotent bool) error {
	x.status, x.wrote, x.committed = 0, false, false
	tc := t.pool.get()
	for tc != nil && !idleClean(tc) {
		tc.nc.Close()
		tc = t.pool.get()
	}
	if tc != nil {
		reuse, err := x.exchangeOn(tc, w, r, body, hsts)
		if err == nil || x.wrote || !idempotent || r.Context().Err() != nil {
			t.release(tc, reuse && err == nil)
			return err
		}
		// The target closed the idle connection as the request went out:
		// like Go's transport, try once more on a new one.
		tc.nc.Close()
	}
	// Not the request's context: a client that goes away must not make a
	// dial look like the target's failure.
	tc, err := dialTarget(context.Background(), t.addr)
	if err != nil {
		return err
	}
	reuse, err := x.exchangeOn(tc, w, r, body, hsts)
	t.release(tc, reuse && err == nil)
	return err
}

// exchangeOn is one exchange on one target connection; reuse tells whether
// the connection may serve another request.
func (x *h2Exchange) exchangeOn(tc *targetConn, w http.ResponseWriter, r *http.Request, body *clientBody, hsts bool) (reuse bool, err error) {
	ctx := r.Context()
	var w8 watch
	defer func() {
		if !w8.stop() {
			reuse = false
		}
	}()
	tc.bw.Write(x.head)
	if body != nil {
		w8.arm(ctx, tc.nc) // a body may take long to pass
		n, err := io.Copy(tc.bw, io.LimitReader(body, r.ContentLength))
		if err == nil && n < r.ContentLength {
			err = io.ErrUnexpectedEOF // the HTTP/2 server checks the length; this is a backstop
		}
		if err != nil {
			return false, err
		}
	}
	if err := tc.bw.Flush(); err != nil {
		return false, err
	}
	headDeadline := time.Now().Add(responseHeaderTimeout)
	if w8.armed() {
		setReadDeadline(ctx, tc.nc, headDeadline)
	} else {
		tc.nc.SetReadDeadline(time.Now().Add(watchAfter))
	}
	hdr := w.Header()
	for {
		head, err := peekHead(tc.br)
		if !w8.armed() && errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(headDeadline) {
			// Slow to answer: from now on the client is watched.
			w8.arm(ctx, tc.nc)
			setReadDeadline(ctx, tc.nc, headDeadline)
			continue
		}
		if errors.Is(err, errHandOff) {
			err = errBadResponse
		}
		if err != nil {
			return false, err
		}
		resp, err := parseResponse(head, r.Method == http.MethodHead)
		if err != nil {
			return false, err
		}
		if resp.status < 200 {
			if resp.status == http.StatusSwitchingProtocols {
				return false, errBadResponse // no upgrade over HTTP/2
			}
			// 103 Early Hints and the like go through, as ReverseProxy
			// passes them; the header map is the final response's after.
			copyResponseHeader(hdr, head, resp, false)
			w.WriteHeader(resp.status)
			clear(hdr)
			tc.br.Discard(len(head))
			x.wrote = true
			continue
		}
		if resp.length < 0 || resp.length > int64(tc.br.Buffered()-len(head)) {
			// A body still to come is not bound by the header timeout, and
			// may stream for as long as the client stays.
			w8.arm(ctx, tc.nc)
			setReadDeadline(ctx, tc.nc, time.Time{})
		}
		copyResponseHeader(hdr, head, resp, hsts)
		if _, ok := hdr["Content-Type"]; !ok {
			// None, as the target sent it (and as HTTP/1.1 clients get it):
			// the HTTP/2 server would sniff one from the body, and make
			// text/html of an upload the target serves untyped.
			hdr["Content-Type"] = nil
		}
		tc.br.Discard(len(head))
		x.status, x.wrote, x.committed = resp.status, true, true
		w.WriteHeader(resp.status)
		cw := clientWriter{w: w}
		switch {
		case resp.length >= 0:
			_, err = copyN(cw, tc.br, resp.length)
		case resp.length == chunked:
			err = cw.copyChunked(tc.br, hdr)
		default:
			_, err = copyN(cw, tc.br, -1)
		}
		if err != nil {
			return false, err
		}
		return resp.keepAlive && tc.br.Buffered() == 0, nil
	}
}

// watchAfter is how long a target may take to start its response before
// the exchange watches for the client going away. Most answer sooner, and
// spare the cost of the watch (an AfterFunc on the stream's context).
const watchAfter = 50 * time.Millisecond

// watch ends an exchange once armed, when the client resets its stream or
// goes away, as the transport did: the target connection is closed rather
// than left waiting on, or streaming, a response no one reads.
type watch struct {
	stopFn func() bool
}

func (w *watch) arm(ctx context.Context, nc net.Conn) {
	if w.stopFn == nil {
		w.stopFn = context.AfterFunc(ctx, func() { nc.SetDeadline(aLongTimeAgo) })
	}
}

func (w *watch) armed() bool { return w.stopFn != nil }

// stop disarms the watch; false when it has fired (the connection is
// spoiled).
func (w *watch) stop() bool { return w.stopFn == nil || w.stopFn() }

// setReadDeadline moves nc's read deadline unless ctx has ended, whose
// AfterFunc may have just set one in the past that this must not undo.
func setReadDeadline(ctx context.Context, nc net.Conn, t time.Time) {
	nc.SetReadDeadline(t)
	if ctx.Err() != nil {
		nc.SetDeadline(aLongTimeAgo)
	}
}

// copyResponseHeader fills hdr from a response head for an HTTP/2 client:
// without hop-by-hop fields or the HTTP/1.1 framing, which HTTP/2 has no
// use for (a Content-Length stays, as the length of the DATA to come).
func copyResponseHeader(hdr http.Header, head []byte, resp response, hsts bool) {
	// One string for the whole head, which keys and values slice: one
	// allocation, not one a field.
	text := string(head)
	values := make([]string, 0, bytes.Count(head, crlf))
	off := bytes.Index(head, crlf) + 2
	for hl := range headerLines(head) {
		start := off
		off += len(hl) + 2
		i := bytes.IndexByte(hl, ':')
		name := hl[:i]
		if eqFold(name, "connection") || eqFold(name, "keep-alive") || eqFold(name, "proxy-connection") ||
			eqFold(name, "upgrade") || eqFold(name, "proxy-authenticate") || eqFold(name, "te") || eqFold(name, "transfer-encoding") {
			continue
		}
		if resp.length == chunked && eqFold(name, "content-length") {
			continue // the length of a chunked body is unknown
		}
		if eqFold(name, "trailer") {
			// HTTP/2 trailers need no announcement, and readTrailers passes
			// on those that come. Announced, each name costs the HTTP/2
			// server a scan of those before it (quadratic: a 30 KiB list
			// took ~60 ms of CPU), and a name announced but not sent would
			// have its header field's value sent again as a trailer.
			continue
		}
		if hopByConnection(name, resp.hop) || hsts && eqFold(name, "strict-transport-security") {
			continue
		}
		if eqFold(name, "content-length") && hdr["Content-Length"] != nil {
			continue // repeated, with the same value (parseResponse checked): once is enough
		}
		key, ok := commonHeaders[string(name)]
		if !ok {
			key = http.CanonicalHeaderKey(text[start : start+i])
		}
		values = append(values, strings.Trim(text[start+i+1:start+len(hl)], " \t"))
		if vv := hdr[key]; len(vv) > 0 {
			hdr[key] = append(vv, values[len(values)-1])
		} else {
			hdr[key] = values[len(values)-1 : len(values) : len(values)]
		}
	}
	if hsts {
		hdr["Strict-Transport-Security"] = []string{hstsValue}
	}
}

// commonHeaders maps the usual response header names, as targets spell
// them, to their canonical form: looking one up costs no allocation.
var commonHeaders = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Cache-Control", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Security-Policy", "Content-Type", "Date", "Etag",
		"Expires", "Last-Modified", "Link", "Location", "Referrer-Policy", "Server", "Set-Cookie", "Strict-Transport-Security",
		"Trailer", "Vary", "Via", "X-Content-Type-Options", "X-Frame-Options", "X-Request-Id"} {
		m[k] = k
		m[strings.ToLower(k)] = k
	}
	m["ETag"] = "Etag"
	return m
}()

func headerKey(name []byte) string {
	if k, ok := commonHeaders[string(name)]; ok {
		return k
	}
	return http.CanonicalHeaderKey(string(name))
}

// clientWriter writes a response body to an HTTP/2 client.
type clientWriter struct {
	w http.ResponseWriter
}

// flush sends what the client has been given so far: the body is being
// streamed and what follows has not arrived.
func (cw clientWriter) flush() error {
	if f, ok := cw.w.(interface{ FlushError() error }); ok {
		return f.FlushError()
	}
	if f, ok := cw.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// Flush makes clientWriter a flushWriter, for copyN.
func (cw clientWriter) Flush() error { return cw.flush() }

// Write writes to the client's stream.
func (cw clientWriter) Write(p []byte) (int, error) { return cw.w.Write(p) }

// copyChunked decodes a chunked body, framing read as strictly as the fast
// path's copyChunked reads it, and gives its trailers to the client as
// HTTP/2 trailers (through hdr, the response's header map).
func (cw clientWriter) copyChunked(src *bufio.Reader, hdr http.Header) error {
	var excess int64
	for {
		if src.Buffered() == 0 {
			if err := cw.flush(); err != nil {
				return err
			}
		}
		_, n, err := chunkHead(src, &excess)
		if err != nil {
			return err
		}
		if n == 0 {
			return readTrailers(src, hdr)
		}
		if _, err := copyN(cw, src, n); err != nil {
			return err
		}
		if _, err := chunkEnd(cw, src); err != nil {
			return err
		}
		src.Discard(2)
	}
}

// maxTrailerBytes bounds a chunked body's trailer section, which this path
// keeps in memory to send as HTTP/2 trailers (the HTTP/1.1 path streams
// it): a target must not grow the proxy without end. maxTrailerNames
// bounds the distinct names in it: the HTTP/2 server declares each with a
// scan of those before it, and 64 KiB of short names (10 000) cost ~120 ms
// of CPU a response.
const (
	maxTrailerBytes = 64 << 10
	maxTrailerNames = 100
)

// readTrailers reads a chunked body's trailer section, through its empty
// line, into hdr under http.TrailerPrefix, leaving out the fields that may
// not be trailers.
func readTrailers(src *bufio.Reader, hdr http.Header) error {
	read, names := 0, 0
	for {
		line, err := readLine(src)
		if err != nil {
			return err
		}
		if read += len(line); read > maxTrailerBytes {
			return errBadChunked
		}
		if len(line) == 2 {
			return nil
		}
		name, value, ok := splitHeader(line[:len(line)-2])
		if !ok {
			return errBadChunked
		}
		if key := headerKey(name); httpguts.ValidTrailerHeader(key) {
			k := http.TrailerPrefix + key
			if hdr[k] == nil {
				if names++; names > maxTrailerNames {
					return errBadChunked
				}
			}
			hdr[k] = append(hdr[k], string(value))
		}
	}
}

// reserveStack grows a new handler goroutine's stack (the HTTP/2 server
// starts one per request, small) while few frames are on it, for the
// forwarding below: grown where it ran out, deep in the exchange, the copy
// walked twice the frames, 8 % of the proxy's CPU under h2load against 5 %.
//
//go:noinline
func reserveStack() {
	var room [4 << 10]byte
	keep(room[:])
}

//go:noinline
func keep([]byte) {}
