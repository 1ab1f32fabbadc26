package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/tlscert/tlstest"
)

// edgeClient sends every request to addr whatever the URL's host, trusting
// ca: as if DNS pointed the hosts at this machine.
func edgeClient(t *testing.T, addr string, ca *tlstest.CA) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2: true,
	}
	if ca != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: ca.Pool()}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func fetch(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// startEdgeServer starts a server process whose load balancer has shared
// listeners on plainPort and securePort, with apps made; what the apps
// leave on the engine goes when the test ends.
func startEdgeServer(t *testing.T, plainPort, securePort int, apps []string, env ...string) (srv *procServer, data string) {
	t.Helper()
	data = t.TempDir()
	for _, app := range apps {
		cleanupRuntime(t, app, data)
	}
	env = append([]string{fmt.Sprintf("SLIPWAY_HTTP_LISTEN=127.0.0.1:%d", plainPort), fmt.Sprintf("SLIPWAY_HTTPS_LISTEN=127.0.0.1:%d", securePort)}, env...)
	srv = startProcServerEnv(t, slipwayBinary(t), data, "", env...)
	for _, app := range apps {
		srv.createApp(app)
	}
	return srv, data
}

// claimHost creates service name of app in staging at revision rev, one
// task of the test web app claiming host, with extra load balancer fields.
func (e *testEnv) claimHost(app, name, host string, rev int, extra map[string]any) (int, map[string]any) {
	l := map[string]any{"container_name": "web", "container_port": 8080, "host": host, "health_check_path": "/health",
		"health_check_interval": "1s", "healthy_threshold": 1, "deregistration_delay": "1s"}
	for k, v := range extra {
		l[k] = v
	}
	return e.call("POST", "/api/v1/apps/"+app+"/envs/staging/services", e.Admin, map[string]any{"name": name,
		"task_definition": fmt.Sprintf("%s:%d", app, rev), "desired_count": 1, "load_balancer": l})
}

// TestIntegrationEdgeSharesListenersByHost: two apps claim hosts on one
// HTTP and one HTTPS listener; certificates brought by hand serve them by
// SNI, HTTP redirects to HTTPS, unknown hosts get a 404, and claims and
// certificates that cannot work are refused with the reason.
func TestIntegrationEdgeSharesListenersByHost(t *testing.T) {
	image := webAppImage(t)
	plainPort, securePort := freePort(t), freePort(t)
	app1 := fmt.Sprintf("edgea%d", time.Now().UnixNano()%1e6)
	app2 := fmt.Sprintf("edgeb%d", time.Now().UnixNano()%1e6)
	srv, data := startEdgeServer(t, plainPort, securePort, []string{app1, app2}, "SLIPWAY_CERT_CHECK_INTERVAL=1s")
	ca := tlstest.NewCA(t)
	create := srv.claimHost
	rev1 := srv.registerTaskDef(webTaskDef(app1, image, "one"))
	rev2 := srv.registerTaskDef(webTaskDef(app2, image, "two"))
	if code, body := create(app1, "web", "one.example.test", rev1, map[string]any{"https": true, "redirect_https": true, "hsts": true}); code != 201 {
		t.Fatalf("service one: %d %v", code, body)
	}
	if code, body := create(app2, "web", "two.example.test", rev2, map[string]any{"https": true, "path_prefix": "/shop"}); code != 201 {
		t.Fatalf("service two: %d %v", code, body)
	}

	// Claims that cannot work are refused, naming the field and the holder.
	for _, c := range []struct {
		host  string
		extra map[string]any
		field string
		msg   string
	}{
		{"one.example.test", nil, "load_balancer.host", "host one.example.test is already claimed by service web in " + app1 + "/staging"},
		{"Bad_Host", nil, "load_balancer.host", "must be lower-case letters"},
		{"three.example.test", map[string]any{"test_host": "three.example.test"}, "load_balancer.test_host", "must differ from host"},
		{"three.example.test", map[string]any{"hsts": true}, "load_balancer.https", "is required with redirect_https or hsts"},
		{"three.example.test", map[string]any{"listener_port": plainPort}, "load_balancer.listener_port", "is a shared listener's"},
	} {
		code, body := create(app2, "other", c.host, rev2, c.extra)
		if code != 400 || errorField(body, "field") != c.field || !strings.Contains(errorField(body, "message"), c.msg) {
			t.Fatalf("claim %s %v: %d %v, want 400 %s …%s…", c.host, c.extra, code, body, c.field, c.msg)
		}
	}

	// With no certificate yet, the services hear of it.
	srv.waitService(app1, "staging", "web", 60*time.Second, "told it lacks a certificate", func(d map[string]any) bool {
		return strings.Contains(events(d), "no certificate holds host one.example.test")
	})

	// Certificates that cannot work are refused with the reason.
	good1, key1 := ca.IssueNow(t, "one.example.test")
	good2, key2 := ca.IssueNow(t, "two.example.test", "*.shop.test")
	expired, expiredKey := ca.Issue(t, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour), "one.example.test")
	for _, c := range []struct {
		body  map[string]string
		field string
		msg   string
	}{
		{map[string]string{"cert_pem": string(good1), "key_pem": string(key2)}, "key_pem", "is not the key of the certificate"},
		{map[string]string{"cert_pem": string(expired), "key_pem": string(expiredKey)}, "cert_pem", "expired on"},
		{map[string]string{"cert_pem": string(good1), "key_pem": string(key1), "host": "two.example.test"}, "host", "the certificate holds one.example.test, not two.example.test"},
		{map[string]string{"cert_pem": "junk", "key_pem": string(key1)}, "cert_pem", "is not a PEM certificate"},
	} {
		code, body := srv.call("POST", "/api/v1/certificates", srv.Admin, c.body)
		if code != 400 || errorField(body, "field") != c.field || !strings.Contains(errorField(body, "message"), c.msg) {
			t.Fatalf("bad certificate: %d %v, want 400 %s …%s…", code, body, c.field, c.msg)
		}
	}
	for _, c := range []struct{ cert, key []byte }{{good1, key1}, {good2, key2}} {
		if code, body := srv.call("POST", "/api/v1/certificates", srv.Admin, map[string]string{"cert_pem": string(c.cert), "key_pem": string(c.key)}); code != 200 {
			t.Fatalf("add certificate: %d %v", code, body)
		}
	}
	viewer := srv.token("edge-viewer", "viewer")
	if code, _ := srv.call("GET", "/api/v1/certificates", viewer, nil); code != 403 {
		t.Fatalf("a viewer listed certificates: %d", code)
	}
	code, list := srv.call("GET", "/api/v1/certificates", srv.Admin, nil)
	if items, _ := list["items"].([]any); code != 200 || len(items) != 2 || strings.Contains(fmt.Sprint(list), "PRIVATE KEY") {
		t.Fatalf("certificates: %d %v", code, list)
	}

	secure := edgeClient(t, fmt.Sprintf("127.0.0.1:%d", securePort), ca)
	plain := edgeClient(t, fmt.Sprintf("127.0.0.1:%d", plainPort), nil)
	// Both services serve before the rules are checked: each has its own
	// task to become healthy.
	deadline := time.Now().Add(60 * time.Second)
	for _, want := range []struct{ url, version string }{{"https://one.example.test/", "version=one"}, {"https://two.example.test/shop/cart", "version=two"}} {
		for {
			resp, err := secure.Get(want.url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && strings.HasPrefix(string(b), want.version) {
					break
				}
				err = fmt.Errorf("%d %s", resp.StatusCode, b)
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(data, "server.log"))
				t.Fatalf("%s never served %s: %v\n%s", want.url, want.version, err, log)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, c := range []struct {
		client *http.Client
		url    string
		status int
		body   string
		header string
	}{
		{secure, "https://one.example.test/", 200, "version=one", "Strict-Transport-Security: max-age=31536000"},
		{secure, "https://two.example.test/shop/cart", 200, "version=two", ""},
		{secure, "https://two.example.test/", 404, "load balancer: no service claims host \"two.example.test\"", ""},
		{plain, "http://nobody.example.test/", 404, "load balancer: no service claims host", ""},
		{plain, "http://one.example.test/a?b=1", 308, "", fmt.Sprintf("Location: https://one.example.test:%d/a?b=1", securePort)},
		{plain, "http://two.example.test/shop", 200, "version=two", ""},
	} {
		resp, body := fetch(t, c.client, c.url)
		if resp.StatusCode != c.status || !strings.HasPrefix(body, c.body) {
			t.Fatalf("%s: %d %q, want %d %q…", c.url, resp.StatusCode, body, c.status, c.body)
		}
		if c.header != "" {
			name, value, _ := strings.Cut(c.header, ": ")
			if resp.Header.Get(name) != value {
				t.Fatalf("%s: %s %q, want %q", c.url, name, resp.Header.Get(name), value)
			}
		}
		if strings.HasPrefix(c.url, "https:") && resp.ProtoMajor != 2 {
			t.Fatalf("%s: HTTP/%d over TLS, want HTTP/2", c.url, resp.ProtoMajor)
		}
	}
	// A host no certificate holds gets the default one, which names none.
	if _, err := secure.Get("https://nobody.example.test/"); err == nil || !strings.Contains(err.Error(), "slipway.invalid") {
		t.Fatalf("a host without a certificate: %v, want the default certificate", err)
	}
	// The brought certificate is the one served.
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", securePort), &tls.Config{ServerName: "two.example.test", RootCAs: ca.Pool()})
	if err != nil {
		t.Fatalf("TLS to two.example.test: %v", err)
	}
	if names := conn.ConnectionState().PeerCertificates[0].DNSNames; names[0] != "two.example.test" {
		t.Fatalf("two.example.test got a certificate for %v", names)
	}
	conn.Close()

	// Removing a certificate takes it out of service.
	if code, body := srv.call("DELETE", "/api/v1/certificates/one.example.test", srv.Admin, nil); code != 204 {
		t.Fatalf("remove certificate: %d %v", code, body)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		secure.Transport.(*http.Transport).CloseIdleConnections() // a new handshake each time
		_, err := secure.Get("https://one.example.test/")
		if err != nil && strings.Contains(err.Error(), "certificate") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("one.example.test still served with a removed certificate: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
