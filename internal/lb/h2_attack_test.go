package lb

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Proofs for the review of the HTTP/2 forwarder (h2.go). Each test asserts
// what should hold; each failed before the fix next to it.

// h2Response is what a raw HTTP/2 client saw of one stream.
type h2Response struct {
	status  string
	header  map[string][]string
	body    string
	trailer map[string][]string
	reset   bool // RST_STREAM instead of a whole response
}

// h2Do sends one request as the given header fields (pseudo-headers
// first, as sent, so the client library's own checks do not interfere)
// on a new connection to addr (over TLS when tlsConf is not nil), and
// reads the response.
func h2Do(t *testing.T, addr string, tlsConf *tls.Config, fields [][2]string, body []byte) h2Response {
	t.Helper()
	var conn net.Conn
	var err error
	if tlsConf != nil {
		conn, err = tls.Dial("tcp", addr, tlsConf)
	} else {
		conn, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 16 << 20
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: body == nil}); err != nil {
		t.Fatal(err)
	}
	if body != nil {
		if err := fr.WriteData(1, true, body); err != nil {
			t.Fatal(err)
		}
	}
	var r h2Response
	var data bytes.Buffer
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the response: %v (so far %+v)", err, r)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			r.reset = true
			r.body = data.String()
			return r
		case *http2.MetaHeadersFrame:
			m := map[string][]string{}
			for _, hf := range f.RegularFields() {
				m[hf.Name] = append(m[hf.Name], hf.Value)
			}
			switch status := f.PseudoValue("status"); {
			case status == "" && r.status != "":
				r.trailer = m
			case len(status) == 3 && status[0] == '1':
				// informational: skipped
			default:
				r.status, r.header = status, m
			}
			if f.StreamEnded() {
				r.body = data.String()
				return r
			}
		case *http2.DataFrame:
			data.Write(f.Data())
			if len(f.Data()) > 0 {
				fr.WriteWindowUpdate(0, uint32(len(f.Data())))
				fr.WriteWindowUpdate(1, uint32(len(f.Data())))
			}
			if f.StreamEnded() {
				r.body = data.String()
				return r
			}
		}
	}
}

func h2Get(addr, host, path string) [][2]string {
	return [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", path}, {":authority", host}}
}

// A target announcing or sending many trailer fields must not cost the
// proxy more than it costs to read them. net/http's HTTP/2 server declares
// each trailer name with a linear scan of those before it (quadratic in
// their number): 64 KiB of three-letter names took ~120 ms of the proxy's
// CPU per response, and 32 KiB of names in the Trailer header ~60 ms (the
// Transport behind ReverseProxy read trailers into 4 KiB). Any tenant
// could take the proxy's two cores from every other with a few dozen
// such responses a second.
func TestAttackH2TargetTrailersCostQuadraticCPU(t *testing.T) {
	var names []string
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	for _, a := range chars {
		for _, b := range chars {
			for _, c := range chars {
				names = append(names, string([]rune{a, b, c}))
			}
		}
	}
	sent := func(n int, line func(string) string) string {
		var sb strings.Builder
		for _, name := range names[:n] {
			sb.WriteString(line(name))
		}
		return sb.String()
	}
	// 10 000 fields: under the 64 KiB that readTrailers keeps (now more
	// names than it keeps: the stream is reset, as past 64 KiB).
	trailers := sent(10000, func(n string) string { return n + ":\r\n" })
	declared := strings.TrimSuffix(sent(7500, func(n string) string { return n + "," }), ",") // one 30 KiB line
	target := rawTarget(t, map[string]string{
		"/trailers": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" + trailers + "\r\n",
		"/declared": "HTTP/1.1 200 OK\r\nTrailer: " + declared + "\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\n\r\n",
	})
	_, addr := fastPathBalancer(t, target)
	for _, path := range []string{"/trailers", "/declared"} {
		t.Run(path, func(t *testing.T) {
			// The proxy's CPU: the raw client reads the frames and no more.
			var best time.Duration
			for range 3 {
				start := time.Now()
				r := h2Do(t, addr, nil, h2Get(addr, addr, path), nil)
				d := time.Since(start)
				if best == 0 || d < best {
					best = d
				}
				if path == "/declared" && (r.reset || r.body != "ok" || r.trailer["x-sum"] == nil) {
					t.Fatalf("a response with a long Trailer header: %+v", r.status)
				}
				if path == "/declared" && len(r.header["trailer"]) > 0 {
					t.Fatalf("the Trailer header went on: %d bytes", len(r.header["trailer"][0]))
				}
				if path == "/trailers" && !r.reset {
					t.Fatalf("10 000 trailer names were passed on (%d), not refused", len(r.trailer))
				}
			}
			// Before the fix the best of three took 110–190 ms; the margin
			// is for a machine busy with other tests.
			if best > 50*time.Millisecond {
				t.Fatalf("one response took %v of the proxy", best)
			}
		})
	}
}

// A pooled h2Exchange kept the committed flag of the request it last
// served; a request that then found no target to try (its group emptied
// between the route's pick and tryTargets) took that flag for its own,
// and had its stream reset — recorded as a 502 — instead of a 503.
func TestAttackH2NoTargetIsNotTakenForACommittedResponse(t *testing.T) {
	b := New(t.Context(), quiet())
	empty := &group{name: "emptied", all: map[string]*target{}, stats: newStats()}
	for range 20 {
		h2Exchanges.Put(&h2Exchange{committed: true, wrote: true, status: 200})
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		r.ProtoMajor, r.ProtoMinor, r.Proto = 2, 0, "HTTP/2.0"
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("the handler panicked (%v): the stream would be reset", p)
				}
			}()
			(&listener{}).serveH2(b, w, r, nil, empty, false)
		}()
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", w.Code)
		}
	}
}

// Where the target names no Content-Type, net/http's HTTP/2 server sniffs
// one from the first bytes of the body; an HTTP/1.1 client of the same
// target gets none. A file a tenant serves untyped (an upload, with
// nosniff) became text/html for HTTP/2 clients only.
func TestAttackH2NoContentTypeIsNotSniffed(t *testing.T) {
	page := "<html><script>alert(1)</script></html>"
	target := rawTarget(t, map[string]string{
		"/upload": fmt.Sprintf("HTTP/1.1 200 OK\r\nX-Content-Type-Options: nosniff\r\nContent-Length: %d\r\n\r\n%s", len(page), page),
	})
	_, addr := fastPathBalancer(t, target)
	r := h2Do(t, addr, nil, h2Get(addr, addr, "/upload"), nil)
	if r.status != "200" || r.body != page {
		t.Fatalf("%+v", r)
	}
	if ct := r.header["content-type"]; ct != nil {
		t.Fatalf("Content-Type %q added to a response that had none", ct)
	}
}
