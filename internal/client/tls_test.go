package client

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCertificateErrors(t *testing.T) {
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"proto":"` + r.Proto + `"}`))
	}))
	hs.EnableHTTP2 = true
	hs.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	hs.StartTLS()
	t.Cleanup(hs.Close)
	trusted := hs.Client().Transport.(*http.Transport).TLSClientConfig // trusts hs's certificate
	ctx := context.Background()
	var out struct{ Proto string }
	if err := New(hs.URL, "tok", WithTLS(trusted)).Do(ctx, "GET", "/", nil, &out); err != nil || out.Proto != "HTTP/2.0" {
		t.Fatalf("trusted: %v %q", err, out.Proto)
	}
	tests := []struct {
		name, url string
		opts      []Option
		want      string
	}{
		{"unknown authority", hs.URL, []Option{WithTrustAdvice("pass --ca-file FILE")},
			"presented a certificate signed by an authority this client does not trust (x509: certificate signed by unknown authority); pass --ca-file FILE"},
		{"another host's", strings.Replace(hs.URL, "127.0.0.1", "localhost", 1), []Option{WithTLS(trusted)},
			"presented a certificate for other names (x509: certificate is valid for example.com, *.example.com, not localhost): use a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(tt.url, "tok", tt.opts...).Do(ctx, "GET", "/", nil, nil)
			var ce *CertificateError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	// The stream client verifies alike.
	if _, err := New(hs.URL, "tok").Stream(ctx, "/", ""); err == nil || !strings.Contains(err.Error(), "does not trust") {
		t.Fatalf("stream: %v", err)
	}
}

// A trusted config is the client's own copy: changing it later changes nothing.
func TestWithTLSCopiesTheConfig(t *testing.T) {
	cfg := &tls.Config{ServerName: "a"}
	c := New("https://x", "", WithTLS(cfg))
	cfg.ServerName = "b"
	if got := c.http.Transport.(*http.Transport).TLSClientConfig.ServerName; got != "a" {
		t.Fatalf("ServerName %q", got)
	}
}
