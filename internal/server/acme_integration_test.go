package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/tlscert/pebbletest"
)

// TestIntegrationEdgeACME: a service that claims a host over HTTPS gets a
// certificate from a real ACME server (Pebble, validating HTTP-01 against
// the load balancer's plain listener), renewed before it expires; when
// the CA is gone, the service keeps serving with the certificate it has
// and its events say why renewal failed.
func TestIntegrationEdgeACME(t *testing.T) {
	image := webAppImage(t)
	plainPort, securePort := freePort(t), freePort(t)
	// Certificates of 30 s: renewal is due 20 s in, a third before expiry.
	pebble := pebbletest.Start(t, pebbletest.Options{HTTPPort: plainPort, Profiles: map[string]time.Duration{"brief": 30 * time.Second}})
	app := fmt.Sprintf("acme%d", time.Now().UnixNano()%1e6)
	srv, data := startEdgeServer(t, plainPort, securePort, []string{app},
		"SLIPWAY_ACME_DIRECTORY="+pebble.DirectoryURL, "SLIPWAY_ACME_CA_FILE="+pebble.CAFile, "SLIPWAY_ACME_PROFILE=brief",
		"SLIPWAY_CERT_CHECK_INTERVAL=1s")
	rev := srv.registerTaskDef(webTaskDef(app, image, "acme"))
	if code, body := srv.claimHost(app, "web", "acme.example.test", rev, map[string]any{"https": true}); code != 201 {
		t.Fatalf("service: %d %v", code, body)
	}

	// served returns the certificate https://acme.example.test/ is served
	// with, once the app answers through it.
	served := func(within time.Duration, what string, ok func(*x509.Certificate) bool) *x509.Certificate {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			var err error
			conn, derr := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", securePort),
				&tls.Config{ServerName: "acme.example.test", RootCAs: pebble.Roots, NextProtos: []string{"http/1.1"}})
			if err = derr; err == nil {
				leaf := conn.ConnectionState().PeerCertificates[0]
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(conn, "GET / HTTP/1.1\r\nHost: acme.example.test\r\nConnection: close\r\n\r\n")
				resp, _ := io.ReadAll(conn)
				conn.Close()
				if strings.Contains(string(resp), "version=acme") && ok(leaf) {
					return leaf
				}
				err = fmt.Errorf("certificate serial %s until %s; response %.80q", leaf.SerialNumber, leaf.NotAfter, resp)
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(data, "server.log"))
				t.Fatalf("never %s: %v\nservice: %v\nserver log:\n%s", what, err, events(srv.service(app, "staging", "web")), log)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	first := served(90*time.Second, "served with a certificate from the ACME server", func(*x509.Certificate) bool { return true })
	if life := first.NotAfter.Sub(first.NotBefore); life > time.Minute {
		t.Fatalf("the certificate lives %s; the brief profile gives 30 s", life)
	}
	code, list := srv.call("GET", "/api/v1/certificates", srv.Admin, nil)
	if items, _ := list["items"].([]any); code != 200 || len(items) != 1 || items[0].(map[string]any)["source"] != "acme" {
		t.Fatalf("certificates: %d %v", code, list)
	}
	renewed := served(40*time.Second, "renewed", func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(first.SerialNumber) != 0 })
	t.Logf("first certificate %s..%s, renewed %s..%s", first.NotBefore.Format(time.TimeOnly), first.NotAfter.Format(time.TimeOnly),
		renewed.NotBefore.Format(time.TimeOnly), renewed.NotAfter.Format(time.TimeOnly))

	// The CA goes away: the certificate in force keeps serving, and the
	// service hears why renewal failed.
	pebble.Stop()
	srv.waitService(app, "staging", "web", 40*time.Second, "told renewal failed", func(d map[string]any) bool {
		return strings.Contains(events(d), "ACME could not issue a certificate for acme.example.test")
	})
	served(5*time.Second, "kept serving the renewed certificate", func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(renewed.SerialNumber) == 0 })
	_, list = srv.call("GET", "/api/v1/certificates", srv.Admin, nil)
	if items, _ := list["items"].([]any); len(items) != 1 || !strings.Contains(fmt.Sprint(items[0].(map[string]any)["last_error"]), "acme") {
		t.Fatalf("certificate after a failed renewal: %v", list)
	}
}

// TestIntegrationControlPlaneACME: with --public-url https://HOST and an
// ACME directory, the control plane serves HTTPS with a certificate the CA
// issued for HOST, validated through the load balancer's plain listener.
func TestIntegrationControlPlaneACME(t *testing.T) {
	plainPort := freePort(t)
	pebble := pebbletest.Start(t, pebbletest.Options{HTTPPort: plainPort})
	data := t.TempDir()
	cleanupRuntime(t, "cpacme", data)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	srv := startProcServerEnv(t, slipwayBinary(t), data, addr,
		fmt.Sprintf("SLIPWAY_HTTP_LISTEN=127.0.0.1:%d", plainPort), "SLIPWAY_PUBLIC_URL=https://cp.example.test:"+port,
		"SLIPWAY_ACME_DIRECTORY="+pebble.DirectoryURL, "SLIPWAY_ACME_CA_FILE="+pebble.CAFile, "SLIPWAY_CERT_CHECK_INTERVAL=1s")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: pebble.Roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "https://cp.example.test:"+port+"/api/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+srv.Admin)
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b), `"admin"`) && resp.ProtoMajor == 2 {
				break
			}
			err = fmt.Errorf("HTTP/%d %d %s", resp.ProtoMajor, resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(data, "server.log"))
			t.Fatalf("the control plane never served HTTPS with a certificate from the CA: %v\nserver log:\n%s", err, log)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
