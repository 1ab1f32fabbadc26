package lb

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/tlscert/tlstest"
)

// testSealer stands for the master keyring: reversible, and visibly not
// the plain key.
type testSealer struct{}

func (testSealer) Seal(p []byte) []byte { return append([]byte("box:"), reversed(p)...) }
func (testSealer) Open(s []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(string(s), "box:")
	if !ok {
		return nil, errors.New("not sealed by testSealer")
	}
	return reversed([]byte(rest)), nil
}

type wrongSealer struct{ testSealer }

func (wrongSealer) Open([]byte) ([]byte, error) {
	return nil, errors.New("sealed value does not decrypt with this master key")
}

func reversed(p []byte) []byte {
	out := slices.Clone(p)
	slices.Reverse(out)
	return out
}

// edgeBalancer serves four backends behind one plain and one TLS listener
// shared by host rules.
func edgeBalancer(t *testing.T, ca *tlstest.CA) (b *Balancer, plain, secure string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b = New(ctx, quiet())
	t.Cleanup(func() { b.Close(context.Background()) })
	groups := map[string]TargetGroup{}
	for _, name := range []string{"a", "api", "wild", "prio", "secure"} {
		groups[name] = TargetGroup{Targets: []string{hostOf(backend(t, name, nil))}, HealthCheck: fastCheck}
	}
	rules := []Rule{
		{Host: "a.example.test", Routes: []Route{{"a", 100}}, Owner: "app-a/prod/web"},
		{Host: "a.example.test", PathPrefix: "/api", Routes: []Route{{"api", 100}}},
		{Host: "*.example.test", Routes: []Route{{"wild", 100}}},
		// An explicit priority beats the exact host.
		{Host: "*.prio.test", Priority: 1, Routes: []Route{{"prio", 100}}},
		{Host: "x.prio.test", Routes: []Route{{"a", 100}}},
		{Host: "secure.test", Routes: []Route{{"secure", 100}}, HSTS: true},
	}
	plainRules := slices.Clone(rules)
	plainRules[len(plainRules)-1].RedirectHTTPS = 443
	plain, secure = freeAddr(t), freeAddr(t)
	aCert, aKey := ca.IssueNow(t, "a.example.test", "*.example.test")
	sCert, sKey := ca.IssueNow(t, "secure.test", "x.prio.test")
	cfg := Config{TargetGroups: groups,
		Listeners: map[string]Listener{
			"http":  {Addr: plain, Rules: plainRules},
			"https": {Addr: secure, Rules: rules, TLS: true},
		},
		Certificates: []Certificate{{CertPEM: string(aCert), KeyPEM: string(aKey)}, {CertPEM: string(sCert), KeyPEM: string(sKey)}},
		Challenges:   map[string]string{"tok-EN_1": "tok-EN_1.thumb"},
	}
	if err := b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	for name := range groups {
		waitHealthy(t, b, name, 1)
	}
	return b, plain, secure
}

// raw10 sends an HTTP/1.0 request, which the fast path hands to net/http,
// so the table runs on both paths.
func raw10(t *testing.T, addr, host, path string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return rawExchange(t, bufio.NewReader(conn), conn, "GET "+path+" HTTP/1.0\r\nHost: "+host+"\r\n\r\n")
}

func TestSharedListenerRoutesByHostAndPath(t *testing.T) {
	ca := tlstest.NewCA(t)
	_, plain, _ := edgeBalancer(t, ca)
	cases := []struct {
		host, path string
		status     int
		body       string // prefix
	}{
		{"a.example.test", "/", 200, "a "},
		{"A.Example.TEST:8080", "/x", 200, "a "}, // case and port do not matter
		{"a.example.test.", "/", 200, "a "},      // nor a trailing dot
		{"a.example.test", "/api", 200, "api "},
		{"a.example.test", "/api/v1?q=1", 200, "api "},
		{"a.example.test", "/apix", 200, "a "}, // a prefix ends at a segment
		{"b.example.test", "/", 200, "wild "},
		{"b.example.test", "/api", 200, "wild "},
		{"deep.b.example.test", "/", 404, "load balancer: no service claims host \"deep.b.example.test\""},
		{"example.test", "/", 404, "load balancer: no service claims host"},
		{"x.prio.test", "/", 200, "prio "}, // priority 1 wins over the exact host
		{"unknown.test", "/", 404, "load balancer: no service claims host \"unknown.test\""},
		{"127.0.0.1", "/", 404, "load balancer: no service claims host"},
	}
	for _, tc := range cases {
		for _, path := range []string{"fast", "net/http"} {
			t.Run(path+" "+tc.host+tc.path, func(t *testing.T) {
				var status int
				var body string
				if path == "fast" {
					req, _ := http.NewRequest("GET", "http://"+plain+tc.path, nil)
					req.Host = tc.host
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					status, body = resp.StatusCode, string(b)
				} else {
					resp, b := raw10(t, plain, tc.host, tc.path)
					status, body = resp.StatusCode, b
				}
				if status != tc.status || !strings.HasPrefix(body, tc.body) {
					t.Fatalf("got %d %q, want %d %q…", status, body, tc.status, tc.body)
				}
			})
		}
	}
}

func TestPlainListenerAnswersChallengesAndRedirects(t *testing.T) {
	ca := tlstest.NewCA(t)
	_, plain, _ := edgeBalancer(t, ca)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, h10 := range []bool{false, true} {
		var resp *http.Response
		var body string
		if h10 {
			resp, body = raw10(t, plain, "anything.test", "/.well-known/acme-challenge/tok-EN_1")
		} else {
			r, err := http.Get("http://" + plain + "/.well-known/acme-challenge/tok-EN_1")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			resp, body = r, string(b)
		}
		if resp.StatusCode != 200 || body != "tok-EN_1.thumb" {
			t.Fatalf("challenge (HTTP/1.0 %v): %d %q", h10, resp.StatusCode, body)
		}
		if h10 {
			resp, _ = raw10(t, plain, "secure.test:8080", "/p?q=1")
		} else {
			req, _ := http.NewRequest("GET", "http://"+plain+"/p?q=1", nil)
			req.Host = "secure.test:8080"
			r, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			resp = r
		}
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://secure.test/p?q=1" {
			t.Fatalf("redirect (HTTP/1.0 %v): %d Location %q", h10, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// An unknown token is not an answer: it goes where the host's rules say.
	resp, _ := raw10(t, plain, "nobody.test", "/.well-known/acme-challenge/other")
	if resp.StatusCode != 404 {
		t.Fatalf("unknown token: %d", resp.StatusCode)
	}
}

func TestTLSListenerServesEachHostItsCertificate(t *testing.T) {
	ca := tlstest.NewCA(t)
	_, _, secure := edgeBalancer(t, ca)
	client := func(h2 bool) *http.Client {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.Pool()},
			ForceAttemptHTTP2: h2,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, secure)
			},
		}
		if !h2 {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	for _, h2 := range []bool{false, true} {
		c := client(h2)
		for _, tc := range []struct{ url, body string }{
			{"https://a.example.test/", "a "},
			{"https://a.example.test/api", "api "},
			{"https://z.example.test/", "wild "},
			{"https://secure.test/", "secure "},
		} {
			resp, err := c.Get(tc.url)
			if err != nil {
				t.Fatalf("h2=%v %s: %v", h2, tc.url, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasPrefix(string(b), tc.body) || !strings.Contains(string(b), "proto=https") {
				t.Fatalf("h2=%v %s: %d %q, want %q… with proto=https", h2, tc.url, resp.StatusCode, b, tc.body)
			}
			if want := 1 + map[bool]int{true: 1}[h2]; resp.ProtoMajor != want {
				t.Fatalf("h2=%v %s: HTTP/%d", h2, tc.url, resp.ProtoMajor)
			}
			hsts := resp.Header.Get("Strict-Transport-Security")
			if (tc.body == "secure ") != (hsts == hstsValue) {
				t.Fatalf("h2=%v %s: Strict-Transport-Security %q", h2, tc.url, hsts)
			}
		}
	}

	// No SNI: the default certificate, which names no served host, and a 404.
	conn, err := tls.Dial("tcp", secure, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "slipway default" {
		t.Fatalf("no SNI got certificate %q", cn)
	}
	resp, body := rawExchange(t, bufio.NewReader(conn), conn, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	if resp.StatusCode != 404 || !strings.Contains(body, "no service claims host") {
		t.Fatalf("no SNI: %d %q", resp.StatusCode, body)
	}

	// TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", secure, &tls.Config{ServerName: "a.example.test", RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

func TestRuleAndCertificateValidation(t *testing.T) {
	ca := tlstest.NewCA(t)
	good, goodKey := ca.IssueNow(t, "a.test")
	_, otherKey := ca.IssueNow(t, "b.test")
	tg := map[string]TargetGroup{"g": {}}
	r := func(host, path string, prio int, owner string) Rule {
		return Rule{Host: host, PathPrefix: path, Priority: prio, Owner: owner, Routes: []Route{{"g", 100}}}
	}
	cases := []struct {
		name  string
		cfg   Config
		want  string
		valid bool
	}{
		{"two hosts", Config{TargetGroups: tg, Listeners: map[string]Listener{"l": {Addr: "127.0.0.1:1", Rules: []Rule{r("a.test", "", 0, ""), r("b.test", "", 0, "")}}}}, "", true},
		{"host claimed twice", Config{TargetGroups: tg, Listeners: map[string]Listener{"l": {Addr: "127.0.0.1:1", Rules: []Rule{r("a.test", "/x", 0, "app1/prod/web"), r("a.test", "/x", 0, "")}}}},
			"listeners.l.rules[1]: host a.test/x is already claimed by app1/prod/web", false},
		{"priority twice", Config{TargetGroups: tg, Listeners: map[string]Listener{"l": {Addr: "127.0.0.1:1", Rules: []Rule{r("a.test", "", 5, "svc-one"), r("a.test", "/x", 5, "")}}}},
			"listeners.l.rules[1]: priority 5 for host a.test is already used by svc-one", false},
		{"priority twice, two hosts", Config{TargetGroups: tg, Listeners: map[string]Listener{"l": {Addr: "127.0.0.1:1", Rules: []Rule{r("a.test", "", 5, ""), r("b.test", "", 5, "")}}}}, "", true},
		{"prefix /", Config{TargetGroups: tg, Listeners: map[string]Listener{"l": {Addr: "127.0.0.1:1", Rules: []Rule{r("a.test", "/", 0, "")}}}}, "path_prefix \"/\" is every path", false},
		{"upper-case host", Config{TargetGroups: tg, Listeners: map[string]Listener{"l": {Addr: "127.0.0.1:1", Rules: []Rule{r("A.test", "", 0, "")}}}}, "listeners.l.rules[0].host \"A.test\" must be lower-case", false},
		{"deep wildcard", Config{TargetGroups: tg, Listeners: map[string]Listener{"l": {Addr: "127.0.0.1:1", Rules: []Rule{r("a.*.test", "", 0, "")}}}}, "must be lower-case letters", false},
		{"ip host", Config{TargetGroups: tg, Listeners: map[string]Listener{"l": {Addr: "127.0.0.1:1", Rules: []Rule{r("10.0.0.1", "", 0, "")}}}}, "is an IP address", false},
		{"bad path", Config{TargetGroups: tg, Listeners: map[string]Listener{"l": {Addr: "127.0.0.1:1", Rules: []Rule{r("a.test", "api", 0, "")}}}}, "path_prefix \"api\" must start with /", false},
		{"priority range", Config{TargetGroups: tg, Listeners: map[string]Listener{"l": {Addr: "127.0.0.1:1", Rules: []Rule{r("a.test", "", 50001, "")}}}}, "priority must be 0 (by specificity) to 50000", false},
		{"unknown group", Config{TargetGroups: tg, Listeners: map[string]Listener{"l": {Addr: "127.0.0.1:1", Rules: []Rule{{Host: "a.test", Routes: []Route{{"nope", 1}}}}}}}, "routes[0].target_group \"nope\" does not exist", false},
		{"key of another cert", Config{Certificates: []Certificate{{CertPEM: string(good), KeyPEM: string(otherKey)}}}, "certificates[0]: certificate and key: tls: private key does not match public key", false},
		{"good cert", Config{Certificates: []Certificate{{CertPEM: string(good), KeyPEM: string(goodKey)}}}, "", true},
		{"bad token", Config{Challenges: map[string]string{"../x": "y"}}, "challenges: token \"../x\"", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.valid != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRoutingTableKeepsKeysSealed: the proxy's table on disk holds no
// private key in plain text, and a restarted proxy serves TLS from it.
func TestRoutingTableKeepsKeysSealed(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	socket, state := filepath.Join(dir, "proxy.sock"), filepath.Join(dir, "proxy.json")
	crt, key := ca.IssueNow(t, "a.test")
	addr := freeAddr(t)
	target := hostOf(backend(t, "a", nil))
	cfg := Config{TargetGroups: map[string]TargetGroup{"a": {Targets: []string{target}, HealthCheck: fastCheck}},
		Listeners:    map[string]Listener{"https": {Addr: addr, TLS: true, Rules: []Rule{{Host: "a.test", Routes: []Route{{"a", 100}}}}}},
		Certificates: []Certificate{{CertPEM: string(crt), KeyPEM: string(key)}}}
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, socket, state, testSealer{}, quiet()) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("proxy: %v", err)
			}
		}
	}
	stop := run()
	c := NewClient(socket)
	waitProxy(t, c)
	if err := c.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	stop()
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "PRIVATE KEY") || !strings.Contains(string(data), sealedPrefix) {
		t.Fatalf("proxy.json keeps the key in plain text:\n%s", data)
	}
	// A proxy whose master key cannot open them still serves the routes.
	{
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, socket, state, wrongSealer{}, quiet()) }()
		waitProxy(t, c)
		if got, err := c.Config(context.Background()); err != nil || len(got.Listeners) != 1 || len(got.Certificates) != 0 {
			t.Fatalf("proxy with the wrong key: %+v, %v; want its routes without certificates", got, err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	defer run()()
	waitProxy(t, c)
	// Reading the table back never shows a key.
	if got, err := c.Config(context.Background()); err != nil || len(got.Certificates) != 1 || got.Certificates[0].KeyPEM != "" {
		t.Fatalf("GET /v1/config: %+v, %v; want the certificate without its key", got.Certificates, err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := hc.Get("https://a.test/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.HasPrefix(string(b), "a ") {
				return
			}
			err = errors.New(resp.Status + " " + string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored proxy: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMatchLooksOnlyAtItsHost: with hundreds of hosts on one listener a
// request finds its rule through the host index, allocating nothing, and
// the order of rules (a priority before specificity) still holds.
func TestMatchLooksOnlyAtItsHost(t *testing.T) {
	l := Listener{}
	for i := range 500 {
		l.Rules = append(l.Rules, Rule{Host: fmt.Sprintf("s%03d.example.test", i), Routes: []Route{{"g", 100}}})
	}
	l.Rules = append(l.Rules,
		Rule{Host: "*.wild.test", Priority: 3, Routes: []Route{{"g", 100}}},
		Rule{Host: "a.wild.test", PathPrefix: "/api", Routes: []Route{{"g", 100}}},
		Rule{Host: "b.wild.test", PathPrefix: "/api", Priority: 2, Routes: []Route{{"g", 100}}})
	tb := newTable(l, map[string]*group{"g": {name: "g"}}, nil)
	for _, c := range []struct{ host, path, want string }{
		{"S499.Example.Test:443", "/", "s499.example.test"},
		{"a.wild.test", "/api/x", "*.wild.test"}, // priority 3 beats the exact host without one
		{"b.wild.test", "/api/x", "b.wild.test/api"},
		{"b.wild.test", "/other", "*.wild.test"},
		{"x.y.wild.test", "/", ""},
		{"nobody.test", "/", ""},
	} {
		got := ""
		if rs := match(tb, []byte(c.host), []byte(c.path)); rs != nil {
			got = rs.key
		}
		if got != c.want {
			t.Errorf("match(%s%s) = %q, want %q", c.host, c.path, got, c.want)
		}
	}
	host, path := []byte("s250.example.test"), []byte("/x")
	if n := testing.AllocsPerRun(100, func() { match(tb, host, path) }); n != 0 {
		t.Errorf("match allocates %.0f times a request", n)
	}
}
