package server

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/security"
	"github.com/chromedp/chromedp"

	"github.com/slipway-dev/slipway/internal/tlscert/tlstest"
)

// trustingHome makes a HOME whose NSS database trusts ca as a root for
// servers: Chromium on Linux reads $HOME/.pki/nssdb, so the browser trusts
// the test CA as it would a company CA, and nothing else changes.
func trustingHome(t *testing.T, ca *tlstest.CA) string {
	t.Helper()
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		t.Skip("certutil is missing: install Debian's libnss3-tools (.ci/run does) to trust the test CA in Chromium")
	}
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + db, "--empty-password"},
		{"-A", "-d", "sql:" + db, "-n", "slipway test CA", "-t", "C,,", "-i", ca.File(t, home)},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}
	return home
}

// TestIntegrationBrowserReachesTwoAppsOnOnePort: a real browser that trusts
// the test CA reaches two apps on one HTTPS port by host name, each with its
// own certificate, and is redirected from the shared HTTP port to HTTPS.
func TestIntegrationBrowserReachesTwoAppsOnOnePort(t *testing.T) {
	image := webAppImage(t)
	plainPort, securePort := freePort(t), freePort(t)
	app1 := fmt.Sprintf("brwa%d", time.Now().UnixNano()%1e6)
	app2 := fmt.Sprintf("brwb%d", time.Now().UnixNano()%1e6)
	ca := tlstest.NewCA(t)
	home := trustingHome(t, ca) // before the server: a skip starts nothing
	srv, data := startEdgeServer(t, plainPort, securePort, []string{app1, app2})
	// No HSTS: Chromium would then upgrade http://one… itself, and the
	// redirect checked below would not be the load balancer's.
	for _, s := range []struct{ app, host, version string }{
		{app1, "one.example.test", "browser-one"},
		{app2, "two.example.test", "browser-two"},
	} {
		rev := srv.registerTaskDef(webTaskDef(s.app, image, s.version))
		if code, body := srv.claimHost(s.app, "web", s.host, rev, map[string]any{"https": true, "redirect_https": true}); code != 201 {
			t.Fatalf("service %s: %d %v", s.host, code, body)
		}
		cert, key := ca.IssueNow(t, s.host)
		if code, body := srv.call("POST", "/api/v1/certificates", srv.Admin, map[string]string{"cert_pem": string(cert), "key_pem": string(key)}); code != 200 {
			t.Fatalf("add certificate for %s: %d %v", s.host, code, body)
		}
	}

	// Both apps serve before the browser looks, so its checks need no retries.
	secure := edgeClient(t, fmt.Sprintf("127.0.0.1:%d", securePort), ca)
	for _, w := range []struct{ url, version string }{
		{"https://one.example.test/", "browser-one"},
		{"https://two.example.test/", "browser-two"},
	} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := secure.Get(w.url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && strings.HasPrefix(string(b), "version="+w.version) {
					break
				}
				err = fmt.Errorf("%d %s", resp.StatusCode, b)
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(data, "server.log"))
				t.Fatalf("%s never served its app: %v\n%s", w.url, err, log)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// The rule sends the names to loopback and leaves the port in the URL:
	// one HTTPS port, two hosts, told apart only by SNI and Host.
	ctx := browser(t, chromedp.Env("HOME="+home), chromedp.Flag("host-resolver-rules", "MAP *.example.test 127.0.0.1"))
	var mu sync.Mutex
	var redirects []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.RedirectResponse != nil {
			mu.Lock()
			redirects = append(redirects, fmt.Sprintf("%s %d -> %s", e.RedirectResponse.URL, e.RedirectResponse.Status, e.Request.URL))
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	visit := func(url string) (*network.Response, string, string) {
		t.Helper()
		// A certificate Chromium did not trust fails the navigation (or
		// shows an error page without the app's text): either fails here.
		// Chromium drops loads when an interface comes or goes, as Docker's
		// do while other tests run: that error alone is worth another try.
		var resp *network.Response
		var err error
		for try := 0; try < 3; try++ {
			mu.Lock()
			redirects = nil // those of this navigation only
			mu.Unlock()
			resp, err = chromedp.Run(ctx, chromedp.NavigateResponse(url))
			if err == nil || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
				break
			}
			t.Logf("%s: %v; trying again", url, err)
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("browse %s: %v", url, err)
		}
		body, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText"))
		if err != nil {
			t.Fatalf("%s: body: %v", url, err)
		}
		href, err := chromedp.Run(ctx, chromedp.Evaluate[string]("location.href"))
		if err != nil {
			t.Fatalf("%s: location: %v", url, err)
		}
		return resp, body, href
	}
	for _, w := range []struct{ host, version string }{
		{"one.example.test", "browser-one"},
		{"two.example.test", "browser-two"},
	} {
		url := fmt.Sprintf("https://%s:%d/", w.host, securePort)
		resp, body, href := visit(url)
		if href != url || resp.Status != 200 || !strings.HasPrefix(body, "version="+w.version+" ") {
			t.Fatalf("%s: at %s, %d %q, want 200 version=%s", url, href, resp.Status, body, w.version)
		}
		// "secure" is Chromium's own verdict: a trusted chain for this name.
		if resp.SecurityState != security.StateSecure || resp.SecurityDetails == nil ||
			resp.SecurityDetails.Issuer != ca.Cert.Subject.CommonName || resp.SecurityDetails.SubjectName != w.host {
			t.Fatalf("%s: security %s %+v, want secure, %s issued by the test CA", url, resp.SecurityState, resp.SecurityDetails, w.host)
		}
		if resp.Protocol != "h2" {
			t.Fatalf("%s: protocol %q, want h2", url, resp.Protocol)
		}
	}

	// The shared HTTP port answers with a redirect to the HTTPS port.
	from := fmt.Sprintf("http://one.example.test:%d/", plainPort)
	to := fmt.Sprintf("https://one.example.test:%d/", securePort)
	resp, body, href := visit(from)
	if href != to || resp.Status != 200 || resp.SecurityState != security.StateSecure || !strings.HasPrefix(body, "version=browser-one ") {
		t.Fatalf("%s: at %s, %d %s %q, want %s with app one", from, href, resp.Status, resp.SecurityState, body, to)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := from + " 308 -> " + to; len(redirects) != 1 || redirects[0] != want {
		t.Fatalf("redirects %q, want [%s]", redirects, want)
	}
}
