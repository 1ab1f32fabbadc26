package lb

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/tlscert/tlstest"
)

// Proofs for the edge review. Each test asserts what should hold and
// fails today.

func sendRaw(t *testing.T, addr, req string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, body := rawExchange(t, bufio.NewReader(conn), conn, req)
	return body
}

// The rules the deploy manager emits when app shop claims shop.test and
// a deployer of app blog then claims shop.test with path_prefix "/" (a
// different key, so checkEdge lets it through). "/" matches every path and
// a longer prefix sorts first: blog gets all of shop.test, including
// /login with shop's cookies.
func TestAttackSlashPrefixTakesTheWholeHost(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := New(ctx, quiet())
	defer b.Close(context.Background())
	groups := map[string]TargetGroup{}
	for _, name := range []string{"shop", "blog"} {
		groups[name] = TargetGroup{Targets: []string{hostOf(backend(t, name, nil))}, HealthCheck: fastCheck}
	}
	addr := freeAddr(t)
	cfg := Config{TargetGroups: groups, Listeners: map[string]Listener{"edge.http": {Addr: addr, Rules: []Rule{
		{Host: "shop.test", Routes: []Route{{"shop", 100}}, Owner: "service web in shop/prod"},
		{Host: "shop.test", PathPrefix: "/", Routes: []Route{{"blog", 100}}, Owner: "service web in blog/prod"},
	}}}}
	err := cfg.Validate()
	if err != nil {
		return // refused: fixed
	}
	if err := b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, b, "shop", 1)
	waitHealthy(t, b, "blog", 1)
	body := sendRaw(t, addr, "POST /login HTTP/1.1\r\nHost: shop.test\r\nCookie: session=shop-secret\r\nContent-Length: 0\r\n\r\n")
	if !strings.HasPrefix(body, "shop ") {
		t.Errorf("shop.test/login (with shop's cookie) is served by %q: prefix \"/\" overlaps the host's catch-all yet is accepted and sorts first", strings.Fields(body)[0])
	}
}

// The fast path matches path prefixes on the raw target; net/http on
// URL.EscapedPath(), which re-encodes the decoded path when the raw one
// holds bytes outside RFC 3986 ('{', '|', '"', '^', non-ASCII…). The same
// request goes to a different service depending on which path serves it,
// and the client picks the path (HTTP/1.0, Expect, chunked, h2…).
func TestAttackFastPathAndNetHTTPRouteTheSamePath(t *testing.T) {
	ca := tlstest.NewCA(t)
	_, plain, _ := edgeBalancer(t, ca)
	for _, target := range []string{"/ap%69/{", "/ap%69/x|y"} {
		fast := strings.Fields(sendRaw(t, plain, "GET "+target+" HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n"))[0]
		slow := strings.Fields(sendRaw(t, plain, "GET "+target+" HTTP/1.1\r\nHost: a.example.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"))[0]
		if fast != slow {
			t.Errorf("GET %s: the fast path routes it to %q, net/http to %q", target, fast, slow)
		}
	}
}
