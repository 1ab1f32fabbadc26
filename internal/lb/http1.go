package lb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The HTTP/1.1 fast path. net/http's server plus httputil.ReverseProxy
// spends most of a small request on goroutine hand-offs between a client
// connection and the transport's read and write loops, and on header maps.
// Here one goroutine per client connection forwards each request's bytes to
// a pooled target connection and the response's bytes back, touching only
// the headers a proxy must (hop-by-hop, X-Forwarded-*). Anything it does not
// handle — HTTP/2, upgrades (WebSocket), Expect, chunked request bodies,
// HTTP/1.0, odd or oversized heads — hands the whole connection, unread
// bytes included, to the net/http server behind it, which proxies with
// ReverseProxy as before; HTTP/2 requests it forwards through this path's
// target connections again (h2.go).

// Timeouts on the client side; variables so tests need not wait them out.
var (
	headerTimeout = 10 * time.Second
	idleTimeout   = 120 * time.Second
)

const (
	clientBufSize = 16 << 10
	targetBufSize = 32 << 10
	// responseHeaderTimeout matches the transport of the net/http path.
	responseHeaderTimeout = 60 * time.Second
	maxIdlePerTarget      = 256
	// A pooled target connection idle longer than this may have been closed
	// by the target; it is dropped rather than risked.
	maxTargetIdle = 50 * time.Second
)

var (
	errHandOff       = errors.New("hand off to net/http")
	errHeadTooLarge  = errors.New("response head too large")
	errBadResponse   = errors.New("malformed response from target")
	aLongTimeAgo     = time.Unix(1, 0)
	crlf             = []byte("\r\n")
	crlfcrlf         = []byte("\r\n\r\n")
	clientReaderPool sync.Pool
	clientWriterPool sync.Pool
)

// clientConn is one accepted connection served by the fast path.
type clientConn struct {
	nc   net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	ip   string // for X-Forwarded-For
	idle atomic.Bool
	head []byte // the outbound request head, reused between requests
	tls  bool   // the client came over TLS
	hsts bool   // the response gets Strict-Transport-Security
}

// targetConn is a keep-alive connection to one target.
type targetConn struct {
	nc       net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	idleFrom time.Time
}

// pool holds a target's idle keep-alive connections, most recent last.
type pool struct {
	mu     sync.Mutex
	conns  []*targetConn
	closed bool // the target is gone: connections coming back are closed
}

func (p *pool) get() *targetConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.conns) > 0 {
		tc := p.conns[len(p.conns)-1]
		p.conns = p.conns[:len(p.conns)-1]
		if time.Since(tc.idleFrom) < maxTargetIdle {
			return tc
		}
		tc.nc.Close()
	}
	return nil
}

func (p *pool) put(tc *targetConn) {
	tc.idleFrom = time.Now()
	p.mu.Lock()
	if !p.closed && len(p.conns) < maxIdlePerTarget {
		p.conns = append(p.conns, tc)
		tc = nil
	}
	p.mu.Unlock()
	if tc != nil {
		tc.nc.Close()
	}
}

func (p *pool) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.closed = nil, true
	p.mu.Unlock()
	for _, tc := range conns {
		tc.nc.Close()
	}
}

var dialer = &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}

func dialTarget(ctx context.Context, addr string) (*targetConn, error) {
	nc, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	rw := newStream(nc)
	return &targetConn{nc: nc, br: bufio.NewReaderSize(rw, targetBufSize), bw: bufio.NewWriterSize(rw, 4<<10)}, nil
}

// handOff is a net.Listener that yields the connections the fast path
// passes to the net/http server.
type handOff struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newHandOff(addr net.Addr) *handOff {
	return &handOff{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (h *handOff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.closed:
		return nil, net.ErrClosed
	}
}

func (h *handOff) Close() error   { h.once.Do(func() { close(h.closed) }); return nil }
func (h *handOff) Addr() net.Addr { return h.addr }

func (h *handOff) give(c net.Conn) {
	select {
	case h.ch <- c:
	case <-h.closed:
		c.Close()
	}
}

// bufferedConn replays what the fast path had read but not consumed.
type bufferedConn struct {
	net.Conn
	r   *bufio.Reader
	tls bool // net/http cannot see the *tls.Conn beneath
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// serve accepts connections until the listener closes.
func (l *listener) serve(b *Balancer) {
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			b.log.Warn("accept failed", "listener", l.name, "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go l.serveConn(b, nc)
	}
}

func (l *listener) track(c *clientConn, add bool) {
	l.mu.Lock()
	if add {
		l.conns[c] = struct{}{}
	} else {
		delete(l.conns, c)
	}
	l.mu.Unlock()
}

func (l *listener) serveConn(b *Balancer, nc net.Conn) {
	overTLS := l.tls.Load()
	if overTLS {
		tc := tls.Server(streamed(nc), b.tlsConf)
		nc.SetDeadline(time.Now().Add(headerTimeout))
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return
		}
		nc.SetDeadline(time.Time{})
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			l.fallback.give(tc) // net/http serves HTTP/2 on a *tls.Conn by ALPN
			return
		}
		nc = tc
	}
	c := &clientConn{nc: nc, tls: overTLS}
	rw := newStream(nc)
	if br, ok := clientReaderPool.Get().(*bufio.Reader); ok {
		br.Reset(rw)
		c.br = br
	} else {
		c.br = bufio.NewReaderSize(rw, clientBufSize)
	}
	if bw, ok := clientWriterPool.Get().(*bufio.Writer); ok {
		bw.Reset(rw)
		c.bw = bw
	} else {
		c.bw = bufio.NewWriterSize(rw, clientBufSize)
	}
	if host, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
		c.ip = host
	}
	l.track(c, true)
	handedOff := false
	defer func() {
		l.track(c, false)
		if !handedOff {
			nc.Close()
			c.br.Reset(nil)
			clientReaderPool.Put(c.br)
		}
		c.bw.Reset(nil)
		clientWriterPool.Put(c.bw)
	}()
	first := true
	for {
		// Waiting for a request: idle. Shutdown closes idle connections by
		// moving their deadline; the deadline is set before the flag so a
		// shutdown that sees the flag always wins.
		if first {
			nc.SetReadDeadline(time.Now().Add(headerTimeout))
		} else if c.br.Buffered() == 0 {
			nc.SetReadDeadline(time.Now().Add(idleTimeout))
		}
		c.idle.Store(true)
		if l.closing.Load() {
			return
		}
		if !first {
			if c.br.Buffered() == 0 {
				if _, err := c.br.Peek(1); err != nil {
					return
				}
			}
			// The header timeout starts with a request's first byte; most
			// heads arrive whole, and then there is nothing left to time.
			if buf, _ := c.br.Peek(c.br.Buffered()); headEnd(buf) < 0 {
				nc.SetReadDeadline(time.Now().Add(headerTimeout))
			}
		}
		first = false
		head, err := peekHead(c.br)
		c.idle.Store(false)
		if errors.Is(err, errHeadTooLarge) {
			err = errHandOff // net/http allows larger heads, or answers 431
		}
		if err == nil {
			var keep bool
			if keep, err = l.forward(b, c, head); err == nil && !keep {
				return
			}
		}
		if errors.Is(err, errHandOff) {
			l.handOff(c)
			handedOff = true
			return
		}
		if err != nil {
			return
		}
	}
}

func (l *listener) handOff(c *clientConn) {
	c.nc.SetReadDeadline(time.Time{})
	l.fallback.give(&bufferedConn{Conn: c.nc, r: c.br, tls: c.tls})
}

// headEnd returns the length of the head at the start of buf, through its
// first empty line (CRLF, or a bare LF from a lax peer), or -1 when that
// line has not arrived yet.
func headEnd(buf []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case bytes.HasPrefix(buf[i:], crlf):
			return i + 2
		case bytes.HasPrefix(buf[i:], []byte("\n")):
			return i + 1
		}
	}
}

// peekHead returns a request or response head without consuming it, so a
// request can still be handed off: errHandOff for one with bare-LF line
// ends (net/http judges those), errHeadTooLarge when the buffer fills first.
func peekHead(br *bufio.Reader) ([]byte, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if n := headEnd(buf); n >= 0 {
			if !bytes.HasSuffix(buf[:n], crlfcrlf) {
				return nil, errHandOff
			}
			return buf[:n], nil
		}
		if len(buf) == br.Size() {
			return nil, errHeadTooLarge
		}
		if _, err := br.Peek(len(buf) + 1); err != nil && br.Buffered() <= len(buf) {
			return nil, err
		}
	}
}

// startLine is a head's first line, without its CRLF.
func startLine(head []byte) []byte { return head[:bytes.Index(head, crlf)] }

// headerLines yields the header lines of a head that peekHead returned,
// without their CRLF.
func headerLines(head []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		rest := head[bytes.Index(head, crlf)+2 : len(head)-2]
		for len(rest) > 0 {
			i := bytes.Index(rest, crlf)
			if !yield(rest[:i]) {
				return
			}
			rest = rest[i+2:]
		}
	}
}

// connectionTokens yields the non-empty options of a Connection header.
func connectionTokens(value []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for tok := range bytes.SplitSeq(value, []byte(",")) {
			if tok = bytes.Trim(tok, " \t"); len(tok) > 0 && !yield(tok) {
				return
			}
		}
	}
}

// request is what the fast path needs to know about a request head.
type request struct {
	method       []byte
	host, target []byte // Host without change; the request target as sent
	path         []byte // target up to '?'

	contentLength int64
	close         bool
	idempotent    bool
}

func isToken[S ~string | ~[]byte](b S) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if !validHeaderByte(b[i]) {
			return false
		}
	}
	return true
}

// validHeaderByte reports a tchar of RFC 9110.
func validHeaderByte(ch byte) bool {
	switch {
	case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0
}

func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		ch := b[i]
		if ch >= 'A' && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != s[i] {
			return false
		}
	}
	return true
}

func validValue[S ~string | ~[]byte](v S) bool {
	for i := 0; i < len(v); i++ {
		if ch := v[i]; ch < ' ' && ch != '\t' || ch == 0x7f {
			return false
		}
	}
	return true
}

// validTarget reports whether net/url takes the request target: no space
// or control byte, and every '%' in the path starting a two-digit hex
// escape. net/http answers 400 to any other, and the fast path must not
// pass on what the rest of the proxy refuses.
func validTarget[S ~string | ~[]byte](target S) bool {
	for i := 0; i < len(target); i++ {
		if ch := target[i]; ch <= ' ' || ch == 0x7f {
			return false
		}
	}
	for i := 0; i < len(target) && target[i] != '?'; i++ {
		if target[i] == '%' && (i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2])) {
			return false
		}
	}
	return true
}

// parseLength reads a Content-Length value: digits only (RFC 9110), so
// "+5" or "-0", which strconv would take, are refused as net/http does.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	for _, ch := range v {
		if ch < '0' || ch > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}

func isHex(ch byte) bool {
	return ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F'
}

// splitHeader splits "Name: value" into a token name and a trimmed value.
func splitHeader(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 || !isToken(line[:i]) {
		return nil, nil, false
	}
	v := bytes.Trim(line[i+1:], " \t")
	if !validValue(v) {
		return nil, nil, false
	}
	return line[:i], v, true
}

// parseRequest checks the head and writes the outbound head into c.head.
func (c *clientConn) parseRequest(head []byte) (request, error) {
	var r request
	line := startLine(head)
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1 || !bytes.Equal(line[sp2+1:], []byte("HTTP/1.1")) {
		return r, errHandOff
	}
	target := line[sp1+1 : sp2]
	r.method = line[:sp1]
	if !isToken(r.method) || len(target) == 0 || target[0] != '/' || !validTarget(target) {
		return r, errHandOff
	}
	r.target = target
	r.path, _, _ = bytes.Cut(target, []byte("?"))
	r.idempotent = string(r.method) == http.MethodGet || string(r.method) == http.MethodHead || string(r.method) == http.MethodOptions
	out := append(c.head[:0], line...)
	out = append(out, "\r\n"...)
	var host, xff []byte
	sawHost, sawLength := false, false
	for hl := range headerLines(head) {
		if hl[0] == ' ' || hl[0] == '\t' {
			return r, errHandOff // obsolete line folding
		}
		name, value, ok := splitHeader(hl)
		if !ok {
			return r, errHandOff
		}
		if bytes.IndexByte(name, '_') >= 0 {
			continue // see dropUnderscoreHeaders
		}
		switch {
		case eqFold(name, "host"):
			if sawHost {
				return r, errHandOff
			}
			sawHost, host = true, value
		case eqFold(name, "content-length"):
			n, ok := parseLength(value)
			if sawLength || !ok {
				return r, errHandOff
			}
			sawLength, r.contentLength = true, n
		case eqFold(name, "connection"):
			for tok := range connectionTokens(value) {
				switch {
				case eqFold(tok, "close"):
					r.close = true
				case !eqFold(tok, "keep-alive"):
					return r, errHandOff // upgrades and custom hop-by-hop headers
				}
			}
			continue
		case eqFold(name, "transfer-encoding"), eqFold(name, "upgrade"), eqFold(name, "expect"):
			return r, errHandOff
		case eqFold(name, "te"):
			if !eqFold(value, "trailers") {
				continue
			}
		case eqFold(name, "keep-alive"), eqFold(name, "proxy-connection"), eqFold(name, "proxy-authorization"), eqFold(name, "trailer"),
			eqFold(name, "forwarded"), eqFold(name, "x-forwarded-host"), eqFold(name, "x-forwarded-proto"):
			continue
		case eqFold(name, "x-forwarded-for"):
			if len(xff) > 0 {
				xff = append(xff, ", "...)
			}
			xff = append(xff, value...)
			continue
		}
		out = append(out, hl...)
		out = append(out, "\r\n"...)
	}
	if !sawHost || !httpguts.ValidHostHeader(string(host)) {
		return r, errHandOff // net/http answers 400 to these
	}
	r.host = host
	out = append(out, "X-Forwarded-For: "...)
	if len(xff) > 0 {
		out = append(out, xff...)
		out = append(out, ", "...)
	}
	out = append(out, c.ip...)
	out = append(out, "\r\nX-Forwarded-Host: "...)
	out = append(out, host...)
	if c.tls {
		out = append(out, "\r\nX-Forwarded-Proto: https\r\n\r\n"...)
	} else {
		out = append(out, "\r\nX-Forwarded-Proto: http\r\n\r\n"...)
	}
	c.head = out
	return r, nil
}

// forward proxies one request; keep tells whether the client connection
// may serve another.
func (l *listener) forward(b *Balancer, c *clientConn, head []byte) (bool, error) {
	req, err := c.parseRequest(head)
	if err != nil {
		return false, err
	}
	start := time.Now()
	c.br.Discard(len(head))
	if !c.tls {
		if ka, ok := challenge(b, req.path); ok {
			return c.answer(req, http.StatusOK, "", ka)
		}
	}
	rs := match(l.table.Load(), req.host, req.path)
	switch {
	case rs == nil:
		return c.fail(req, http.StatusNotFound, notFoundMessage(req.host))
	case !c.tls && rs.redirect != 0:
		return c.answer(req, http.StatusPermanentRedirect, "Location: "+httpsURL(req.host, rs.redirect, req.target)+"\r\n", "")
	}
	c.hsts = c.tls && rs.hsts
	g := rs.pick()
	if g == nil {
		return c.fail(req, http.StatusServiceUnavailable, "no healthy target for "+l.name)
	}
	var status int
	var keep, wrote bool
	g, err = b.tryTargets(l, rs, g, func(t *target) (bool, error) {
		t.inflight.Add(1)
		defer t.inflight.Add(-1)
		var err error
		status, keep, wrote, err = c.exchange(t, req, req.close || l.closing.Load())
		// As on the net/http path, but a body is read from the client only
		// once a connection is open, so any request may go on after a dial
		// failure.
		return !wrote && (isDialError(err) || req.idempotent && req.contentLength == 0), err
	})
	switch {
	case err == nil:
		g.stats.record(status, time.Since(start))
		return keep, nil
	case wrote:
		// Part of a response reached the client: all that can be done is to
		// close the connection.
		g.stats.record(http.StatusBadGateway, time.Since(start))
		b.log.Warn("proxy error", "listener", l.name, "err", err)
		return false, err
	case errors.Is(err, errNoTarget):
		return c.fail(req, http.StatusServiceUnavailable, "load balancer: "+err.Error())
	}
	b.log.Warn("proxy error", "listener", l.name, "err", err)
	g.stats.record(http.StatusBadGateway, time.Since(start))
	return c.fail(req, http.StatusBadGateway, "load balancer: "+err.Error())
}

// fail answers the client with an error of the load balancer's own.
func (c *clientConn) fail(req request, status int, msg string) (bool, error) {
	return c.answer(req, status, "", msg+"\n")
}

// answer responds to the client itself; header is extra lines, each
// ending in CRLF.
func (c *clientConn) answer(req request, status int, header, body string) (bool, error) {
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: %d\r\n%s", status, http.StatusText(status), len(body), header)
	// A request body that was never forwarded is still on the connection.
	keep := !req.close && req.contentLength == 0
	if !keep {
		c.bw.WriteString("Connection: close\r\n")
	}
	c.bw.WriteString("\r\n")
	if !eqFold(req.method, "head") {
		c.bw.WriteString(body)
	}
	if err := c.bw.Flush(); err != nil {
		return false, err
	}
	return keep, nil
}

// exchange sends the request to t and copies the response back. keep
// tells whether the client connection may serve another request; wrote,
// whether any of the response reached the client (no retry then).
func (c *clientConn) exchange(t *target, req request, closeClient bool) (status int, keep, wrote bool, err error) {
	tc := t.pool.get()
	for tc != nil && !idleClean(tc) {
		tc.nc.Close()
		tc = t.pool.get()
	}
	if tc != nil {
		var reuse bool
		status, keep, wrote, reuse, err = c.exchangeOn(tc, req, closeClient)
		if err == nil || wrote || !(req.idempotent && req.contentLength == 0) {
			t.release(tc, reuse && err == nil)
			return status, keep, wrote, err
		}
		// The target closed the idle connection as the request went out:
		// like Go's transport, try once more on a new one.
		tc.nc.Close()
	}
	if tc, err = dialTarget(context.Background(), t.addr); err != nil {
		return 0, false, false, err
	}
	var reuse bool
	status, keep, wrote, reuse, err = c.exchangeOn(tc, req, closeClient)
	t.release(tc, reuse && err == nil)
	return status, keep, wrote, err
}

// idleClean reports whether a pooled connection may carry a request: open,
// and with nothing from the target since its last response. Bytes written
// after a response (a body on a HEAD response, more than Content-Length
// said) would be read as the next request's response, and every later
// client on the connection would get the one before theirs; Go's transport
// (through its read loop) and nginx drop such connections too. The peek
// also spares a request that cannot be retried a connection the target
// closed while it sat idle. Bytes that arrive after the peek are a race
// every HTTP/1.1 client has.
func idleClean(tc *targetConn) bool {
	return tc.br.Buffered() == 0 && alive(tc.nc)
}

func (t *target) release(tc *targetConn, reuse bool) {
	if reuse {
		t.pool.put(tc)
	} else {
		tc.nc.Close()
	}
}

// exchangeOn is one exchange on one target connection; reuse tells whether
// the connection may serve another request.
func (c *clientConn) exchangeOn(tc *targetConn, req request, closeClient bool) (status int, keep, wrote, reuse bool, err error) {
	tc.bw.Write(c.head)
	if req.contentLength > int64(c.br.Buffered()) {
		c.nc.SetReadDeadline(time.Time{}) // a body is not bound by the header timeout
	}
	if req.contentLength > 0 {
		if _, err := copyN(tc.bw, c.br, req.contentLength); err != nil {
			return 0, false, false, false, fmt.Errorf("request body: %w", err)
		}
	}
	if err := tc.bw.Flush(); err != nil {
		return 0, false, false, false, err
	}
	tc.nc.SetReadDeadline(time.Now().Add(responseHeaderTimeout))
	for {
		head, err := peekHead(tc.br)
		if errors.Is(err, errHandOff) {
			err = errBadResponse
		}
		if err != nil {
			return 0, false, false, false, err
		}
		resp, err := parseResponse(head, eqFold(req.method, "head"))
		if err != nil {
			return 0, false, false, false, err
		}
		if resp.status < 200 {
			if resp.status == http.StatusSwitchingProtocols {
				return 0, false, false, false, errBadResponse // upgrades never take this path
			}
			c.bw.Write(head) // 103 Early Hints and the like go through as they are
			tc.br.Discard(len(head))
			if err := c.bw.Flush(); err != nil {
				return 0, false, true, false, err
			}
			continue
		}
		if resp.length < 0 || resp.length > int64(tc.br.Buffered()-len(head)) {
			// A body still to come is not bound by the header timeout. (A
			// pooled connection's deadline is set again on its next use.)
			tc.nc.SetReadDeadline(time.Time{})
		}
		keep = !closeClient && resp.length != untilClose
		writeResponseHead(c.bw, head, resp, keep, c.hsts)
		tc.br.Discard(len(head))
		switch {
		case resp.length >= 0:
			_, err = copyN(c.bw, tc.br, resp.length)
		case resp.length == chunked:
			err = copyChunked(c.bw, tc.br)
		default:
			_, err = copyN(c.bw, tc.br, -1)
		}
		if err == nil {
			err = c.bw.Flush()
		}
		if err != nil {
			return resp.status, false, true, false, err
		}
		return resp.status, keep, true, resp.keepAlive && tc.br.Buffered() == 0, nil
	}
}

const (
	chunked    = -1
	untilClose = -2
)

type response struct {
	status    int
	length    int64 // bytes, chunked or untilClose
	keepAlive bool
	hop       [][]byte // header names the Connection header makes hop-by-hop
}

func parseResponse(head []byte, headRequest bool) (response, error) {
	r := response{length: untilClose, keepAlive: true}
	line := startLine(head)
	if len(line) < 12 || !validValue(line) || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[7] != '0' && line[7] != '1' || line[8] != ' ' {
		return r, errBadResponse
	}
	if line[7] != '1' {
		r.keepAlive = false // HTTP/1.0 targets close unless asked otherwise
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil || code < 100 || len(line) > 12 && line[12] != ' ' {
		return r, errBadResponse
	}
	r.status = code
	isChunked, sawLength := false, false
	for hl := range headerLines(head) {
		name, value, ok := splitHeader(hl)
		if !ok {
			return r, errBadResponse
		}
		switch {
		case eqFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || sawLength && n != r.length {
				return r, errBadResponse
			}
			sawLength, r.length = true, n
		case eqFold(name, "transfer-encoding"):
			if !eqFold(value, "chunked") {
				return r, errBadResponse
			}
			isChunked = true
		case eqFold(name, "connection"):
			for tok := range connectionTokens(value) {
				switch {
				case eqFold(tok, "close"):
					r.keepAlive = false
				case eqFold(tok, "keep-alive"):
					if line[7] == '0' {
						r.keepAlive = true
					}
				default:
					r.hop = append(r.hop, tok)
				}
			}
		}
	}
	if isChunked {
		r.length = chunked // Transfer-Encoding overrides Content-Length
	}
	if headRequest || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		r.length = 0
	}
	if r.length == untilClose {
		r.keepAlive = false
	}
	return r, nil
}

// writeResponseHead writes the response head for the client: HTTP/1.1,
// without hop-by-hop headers.
func writeResponseHead(w *bufio.Writer, head []byte, r response, keepClient, hsts bool) {
	w.WriteString("HTTP/1.1")
	w.Write(startLine(head)[8:])
	w.WriteString("\r\n")
	for hl := range headerLines(head) {
		name := hl[:bytes.IndexByte(hl, ':')]
		if eqFold(name, "connection") || eqFold(name, "keep-alive") || eqFold(name, "proxy-connection") ||
			eqFold(name, "upgrade") || eqFold(name, "proxy-authenticate") || eqFold(name, "te") {
			continue
		}
		if eqFold(name, "transfer-encoding") && r.length != chunked || eqFold(name, "content-length") && r.length == chunked {
			continue // chunking overrides a length; only the framing used is sent
		}
		if hopByConnection(name, r.hop) || hsts && eqFold(name, "strict-transport-security") {
			continue
		}
		w.Write(hl)
		w.WriteString("\r\n")
	}
	if hsts {
		w.WriteString("Strict-Transport-Security: " + hstsValue + "\r\n")
	}
	if !keepClient {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
}

func hopByConnection(name []byte, hop [][]byte) bool {
	for _, h := range hop {
		if bytes.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// flushWriter is where copyN writes: a client connection's buffer, or an
// HTTP/2 stream (h2.go).
type flushWriter interface {
	io.Writer
	Flush() error
}

// copyN copies n bytes (n < 0: until EOF), flushing dst whenever src has
// nothing more buffered so streamed responses reach the client at once.
// A body that has fully arrived is not flushed here.
func copyN(dst flushWriter, src *bufio.Reader, n int64) (int64, error) {
	var copied int64
	for n < 0 || copied < n {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return copied, err
			}
			if _, err := src.Peek(1); err != nil {
				if n < 0 && errors.Is(err, io.EOF) {
					return copied, nil
				}
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return copied, err
			}
		}
		k := int64(src.Buffered())
		if n >= 0 && k > n-copied {
			k = n - copied
		}
		p, _ := src.Peek(int(k))
		if _, err := dst.Write(p); err != nil {
			return copied, err
		}
		src.Discard(int(k))
		copied += k
	}
	return copied, nil
}

// Limits net/http's chunked reader (net/http/internal) sets, kept here so
// that no body ends where net/http would not end it.
const (
	// maxChunkLine bounds a chunk-size line, extensions included, without
	// its CRLF.
	maxChunkLine = 4096
	// maxChunkExcess bounds the framing beyond 16 bytes a chunk plus twice
	// its data: tiny chunks with long extensions are refused.
	maxChunkExcess = 16 << 10
)

// errBadChunked is chunked framing net/http refuses.
var errBadChunked = errors.New("malformed chunked body")

// copyChunked passes a chunked body through as it is, trailers included,
// reading its framing only to know where it ends. It reads that framing as
// strictly as net/http does (errBadChunked): where the proxy and the target,
// or the proxy and the client, end a body at different bytes, what is left
// is taken for the next response.
func copyChunked(dst *bufio.Writer, src *bufio.Reader) error {
	var excess int64
	for {
		if src.Buffered() == 0 {
			// Nothing more is buffered: let the client have what it has.
			if err := dst.Flush(); err != nil {
				return err
			}
		}
		line, n, err := chunkHead(src, &excess)
		if err != nil {
			return err
		}
		dst.Write(line)
		if n == 0 {
			return copyTrailers(dst, src)
		}
		if _, err := copyN(dst, src, n); err != nil {
			return err
		}
		end, err := chunkEnd(dst, src)
		if err != nil {
			return err
		}
		dst.Write(end)
		src.Discard(2)
	}
}

// chunkHead reads a chunk-size line (CRLF included) and the size it gives,
// as strictly as net/http reads them, counting the framing in excess.
func chunkHead(src *bufio.Reader, excess *int64) ([]byte, int64, error) {
	line, err := readLine(src)
	if err != nil {
		return nil, 0, err
	}
	if len(line)-2 >= maxChunkLine {
		return nil, 0, errBadChunked
	}
	n, ok := parseChunkSize(line[:len(line)-2])
	if !ok {
		return nil, 0, errBadChunked
	}
	if *excess = chunkExcess(*excess, len(line), n); *excess > maxChunkExcess {
		return nil, 0, errBadChunked
	}
	return line, n, nil
}

// chunkEnd peeks at the CRLF that ends a chunk's data (flushing dst first
// when it has not arrived yet), which the caller discards.
func chunkEnd(dst flushWriter, src *bufio.Reader) ([]byte, error) {
	if src.Buffered() < 2 {
		if err := dst.Flush(); err != nil {
			return nil, err
		}
	}
	end, err := src.Peek(2)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if !bytes.Equal(end, crlf) {
		return nil, errBadChunked // the data is not the size the line gave
	}
	return end, nil
}

// chunkExcess is the framing overhead after a chunk of n bytes whose size
// line (CRLF included) is lineLen long, counted as net/http counts it;
// n >= excess clears it without 2*n overflowing.
func chunkExcess(excess int64, lineLen int, n int64) int64 {
	excess += int64(lineLen)
	if n >= excess {
		return 0
	}
	return max(excess-16-2*n, 0)
}

// copyTrailers passes a chunked body's trailer section through, through its
// empty line. Each field must read as a head's would: net/http reads
// trailers as a header (textproto), and no obsolete folding.
func copyTrailers(dst *bufio.Writer, src *bufio.Reader) error {
	for {
		line, err := readLine(src)
		if err != nil {
			return err
		}
		if len(line) > 2 {
			if _, _, ok := splitHeader(line[:len(line)-2]); !ok {
				return errBadChunked
			}
		}
		dst.Write(line)
		if len(line) == 2 {
			return nil
		}
	}
}

// parseChunkSize reads the size of a chunk-size line (without its CRLF) as
// net/http does: trailing spaces and tabs and any extension dropped, then
// 1 to 16 hex digits and nothing else (no sign, no "0x", no space before
// the ';'), which must fit an int64 here.
func parseChunkSize(line []byte) (int64, bool) {
	size, _, _ := bytes.Cut(bytes.TrimRight(line, " \t"), []byte(";"))
	if len(size) == 0 || len(size) > 16 {
		return 0, false
	}
	var n uint64
	for _, ch := range size {
		var d byte
		switch {
		case ch >= '0' && ch <= '9':
			d = ch - '0'
		case ch >= 'a' && ch <= 'f':
			d = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			d = ch - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(d)
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// readLine returns one line of chunked framing; it stays valid until the
// next read from src. It must end in CRLF with no other CR in it: RFC 9112
// allows no bare LF there (erratum 7633), and a bare CR is read as a line
// end by some parsers and not by others.
func readLine(src *bufio.Reader) ([]byte, error) {
	line, err := src.ReadSlice('\n')
	switch {
	case errors.Is(err, io.EOF):
		return nil, io.ErrUnexpectedEOF
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, errBadChunked
	case err != nil:
		return nil, err
	}
	if len(line) < 2 || bytes.IndexByte(line, '\r') != len(line)-2 {
		return nil, errBadChunked
	}
	return line, nil
}

// shutdown stops accepting, closes idle connections, lets requests in
// flight finish, then hands the rest of ctx to the net/http server.
func (l *listener) shutdown(ctx context.Context) {
	l.closing.Store(true)
	l.ln.Close()
	fallbackDone := make(chan struct{})
	go func() { l.srv.Shutdown(ctx); close(fallbackDone) }()
	for {
		l.mu.Lock()
		n := len(l.conns)
		for c := range l.conns {
			if c.idle.Load() {
				c.nc.SetReadDeadline(aLongTimeAgo)
			}
		}
		if ctx.Err() != nil {
			for c := range l.conns {
				c.nc.Close()
			}
		}
		l.mu.Unlock()
		if n == 0 || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	<-fallbackDone
}
