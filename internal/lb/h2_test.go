package lb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2cClient speaks HTTP/2 without TLS, which the plain listener takes
// (the TLS listener's h2 goes to the same handler: edge_test.go).
func h2cClient(t *testing.T) *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// h2Backend adds to fastPathBackend's shapes those an HTTP/2 client sees
// differently: trailers, 1xx, the request head as the target got it.
func h2Backend(t *testing.T) *httptest.Server {
	fast := fastPathBackend(t).Config.Handler
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/head": // the request head as it arrived
			var lines []string
			for k, vv := range r.Header {
				lines = append(lines, k+"="+strings.Join(vv, "|"))
			}
			slices.Sort(lines)
			fmt.Fprintf(w, "%s %s %s host=%s len=%d %s", r.Proto, r.Method, r.RequestURI, r.Host, r.ContentLength, strings.Join(lines, " "))
		case "/trailers":
			w.Header().Set("Trailer", "X-Sum")
			fmt.Fprint(w, "body")
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "late")
		case "/hints":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			fmt.Fprint(w, "hinted")
		default:
			fast.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func TestHTTP2Forwarding(t *testing.T) {
	backend := h2Backend(t)
	b, addr := fastPathBalancer(t, hostOf(backend))
	c := h2cClient(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	sum := sha256.Sum256(payload)
	type result struct {
		status  int
		body    string
		header  http.Header
		trailer http.Header
		hints   []int
	}
	cases := []struct {
		name   string
		method string
		path   string
		body   io.Reader // nil: none; a bytes.Reader has a length, others not
		header map[string]string
		check  func(r result) string // "" when right
	}{
		{name: "get", method: "GET", path: "/", check: func(r result) string { return want(r.status == 200 && r.body == "ok", r) }},
		{name: "the head the target gets", method: "GET", path: "/head?q=%41",
			header: map[string]string{"X-Forwarded-For": "10.0.0.1", "Forwarded": "for=evil", "X-Forwarded-Host": "evil", "X-Forwarded-Proto": "https", "X_Forwarded_For": "evil", "X-Custom": "v"},
			check: func(r result) string {
				return want(r.status == 200 && strings.HasPrefix(r.body, "HTTP/1.1 GET /head?q=%41 host="+addr+" len=0 ") &&
					strings.Contains(r.body, " X-Custom=v ") && strings.Contains(r.body, " X-Forwarded-For=10.0.0.1, 127.0.0.1 ") &&
					strings.Contains(r.body, " X-Forwarded-Host="+addr+" ") && strings.HasSuffix(r.body, " X-Forwarded-Proto=http") &&
					!strings.Contains(r.body, "evil") && !strings.Contains(r.body, "Forwarded=") && !strings.Contains(r.body, "X_"), r)
			}},
		{name: "post with a 1 MiB body", method: "POST", path: "/echo", body: bytes.NewReader(payload), check: func(r result) string {
			return want(r.status == 200 && r.body == fmt.Sprintf("%d %x te=[] xff=127.0.0.1", len(payload), sum), r)
		}},
		{name: "empty post", method: "POST", path: "/head", body: bytes.NewReader(nil), check: func(r result) string {
			return want(r.status == 200 && strings.HasPrefix(r.body, "HTTP/1.1 POST /head host="+addr+" len=0 ") && strings.Contains(r.body, " Content-Length=0 "), r)
		}},
		// A body of unknown length stays with ReverseProxy, which streams it.
		{name: "post of unknown length", method: "POST", path: "/echo", body: io.MultiReader(strings.NewReader("hel"), strings.NewReader("lo")), check: func(r result) string {
			return want(r.status == 200 && strings.HasPrefix(r.body, "5 2cf24dba"), r)
		}},
		{name: "chunked response", method: "GET", path: "/stream", check: func(r result) string { return want(r.status == 200 && r.body == "first\nsecond\n", r) }},
		{name: "3 MiB response", method: "GET", path: "/big", check: func(r result) string {
			return want(r.status == 200 && len(r.body) == 3<<20, r)
		}},
		{name: "head", method: "HEAD", path: "/big", check: func(r result) string {
			return want(r.status == 200 && r.body == "", r)
		}},
		{name: "no content", method: "GET", path: "/nocontent", check: func(r result) string { return want(r.status == 204 && r.body == "", r) }},
		{name: "hop-by-hop", method: "GET", path: "/hop", check: func(r result) string {
			return want(r.body == "hop" && r.header.Get("X-Kept") == "end" && r.header.Get("X-Secret") == "" && r.header.Get("Connection") == "", r)
		}},
		{name: "response head too large", method: "GET", path: "/hugehead", check: func(r result) string {
			return want(r.status == 502 && strings.HasPrefix(r.body, "load balancer: response head too large"), r)
		}},
		{name: "body until the target closes", method: "GET", path: "/unframed", check: func(r result) string { return want(r.status == 200 && r.body == "until close", r) }},
		{name: "trailers", method: "GET", path: "/trailers", check: func(r result) string {
			return want(r.body == "body" && r.trailer.Get("X-Sum") == "42" && r.trailer.Get("X-Late") == "late", r)
		}},
		{name: "early hints", method: "GET", path: "/hints", check: func(r result) string {
			return want(r.status == 200 && r.body == "hinted" && slices.Equal(r.hints, []int{103}), r)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hints []int
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { hints = append(hints, code); return nil },
			})
			req, err := http.NewRequestWithContext(ctx, tc.method, "http://"+addr+tc.path, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header[k] = []string{v}
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("body: %v", err)
			}
			if resp.ProtoMajor != 2 {
				t.Fatalf("client saw %s", resp.Proto)
			}
			if msg := tc.check(result{resp.StatusCode, string(body), resp.Header, resp.Trailer, hints}); msg != "" {
				t.Fatal(msg)
			}
		})
	}
	// The requests went over the fast path's pooled target connections,
	// and the request metrics counted them.
	g := b.groups["tg"]
	g.mu.RLock()
	tgt := g.live[0]
	g.mu.RUnlock()
	tgt.pool.mu.Lock()
	pooled := len(tgt.pool.conns)
	tgt.pool.mu.Unlock()
	if pooled == 0 {
		t.Fatal("no target connection in the fast path's pool after HTTP/2 requests")
	}
	if n := b.State(time.Minute).TargetGroups["tg"].Stats.Requests; n < int64(len(cases)) {
		t.Fatalf("stats counted %d requests, want at least %d", n, len(cases))
	}
}

func want(ok bool, r any) string {
	if ok {
		return ""
	}
	s := fmt.Sprintf("got %+v", r)
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return s
}

// TestHTTP2TargetsThatBreakHTTP is TestTargetsThatBreakHTTP for HTTP/2
// clients: a malformed head is the load balancer's 502; a body cut short
// or badly framed resets the stream, never passing for a whole response.
func TestHTTP2TargetsThatBreakHTTP(t *testing.T) {
	target := rawTarget(t, map[string]string{
		"/garbage":   "SMTP ready\r\n\r\n",
		"/bare-lf":   "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"/split":     "HTTP/1.1 200 OK\nSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok",
		"/badlen":    "HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok",
		"/gzip-te":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"/upgrade":   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"/short":     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part",
		"/badchunk":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
		"/chunkcut":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
		"/badtrail":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nbad trailer\r\n\r\n",
		"/chunkhead": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
		"/trailers":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" + strings.Repeat("X-T: "+strings.Repeat("t", 1000)+"\r\n", 70) + "\r\n",
	})
	_, addr := fastPathBalancer(t, target)
	c := h2cClient(t)
	for _, tc := range []struct {
		path   string
		status int    // 0: the response must fail as it is read
		body   string // prefix
	}{
		{"/garbage", 502, "load balancer: malformed response from target"},
		{"/bare-lf", 502, "load balancer: malformed response from target"},
		{"/split", 502, "load balancer: malformed response from target"},
		{"/badlen", 502, "load balancer: malformed response from target"},
		{"/gzip-te", 502, "load balancer: malformed response from target"},
		{"/upgrade", 502, "load balancer: malformed response from target"},
		{"/short", 0, ""},
		{"/badchunk", 0, ""},
		{"/chunkcut", 0, ""},
		{"/badtrail", 0, ""},
		{"/trailers", 0, ""},      // 70 KiB of trailers: more than the proxy keeps
		{"/chunkhead", 200, "ok"}, // chunking overrides the length, which the client must not see
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := c.Get("http://" + addr + tc.path)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			switch {
			case tc.status == 0 && err == nil:
				t.Fatalf("a complete %d response %q: the client must see it cut short", resp.StatusCode, body)
			case tc.status == 0:
			case err != nil:
				t.Fatal(err)
			case resp.StatusCode != tc.status || !strings.HasPrefix(string(body), tc.body) || resp.Header.Get("Set-Cookie") != "":
				t.Fatalf("%d %v %q, want %d %q…", resp.StatusCode, resp.Header, body, tc.status, tc.body)
			case tc.path == "/chunkhead" && (resp.Header.Get("Content-Length") == "5" || resp.Trailer.Get("X-T") != "1"):
				t.Fatalf("chunked with a length: header %v trailer %v", resp.Header, resp.Trailer)
			}
		})
	}
}

// TestHTTP2ClientGoneEndsTheExchange: a client that resets its stream
// while the target works frees the target connection at once, as the
// transport did, rather than when the target answers.
func TestHTTP2ClientGoneEndsTheExchange(t *testing.T) {
	gone := make(chan struct{}, 1)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hang" {
			return
		}
		select {
		case <-r.Context().Done(): // the proxy closed the connection
			gone <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(target.Close)
	b, addr := fastPathBalancer(t, hostOf(target))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/hang", nil)
	if resp, err := h2cClient(t).Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the request finished before the client gave up")
	}
	select {
	case <-gone:
	case <-time.After(3 * time.Second):
		t.Fatal("the target connection outlived the client's stream by 3 s")
	}
	deadline := time.Now().Add(2 * time.Second)
	for b.State(time.Second).TargetGroups["tg"].Targets[0].InFlight != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request is still counted in flight")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHTTP2BadBodyIs400: a body that ends short of its Content-Length is
// the client's fault, answered 400, as on the HTTP/1.1 paths. Go's client
// cannot send one; this speaks the frames itself (h2c, prior knowledge).
func TestHTTP2BadBodyIs400(t *testing.T) {
	_, addr := fastPathBalancer(t, hostOf(h2Backend(t)))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/echo"}, {":authority", addr}, {"content-length", "10"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteData(1, true, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("stream reset (%v), want a 400", f.ErrCode)
		case *http2.MetaHeadersFrame:
			if status := f.PseudoValue("status"); status != "400" {
				t.Fatalf("status %s, want 400", status)
			}
		case *http2.DataFrame:
			if !strings.HasPrefix(string(f.Data()), "load balancer: request body: ") {
				t.Fatalf("body %q", f.Data())
			}
			return
		}
	}
}
