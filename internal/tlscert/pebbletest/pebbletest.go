// Package pebbletest runs Pebble, Let's Encrypt's test ACME server, for
// tests. Pebble really validates HTTP-01: every host name resolves to
// 127.0.0.1 (through a DNS server this package runs in the test process) and
// Pebble fetches http://HOST:HTTPPort/.well-known/acme-challenge/TOKEN, so
// whatever serves 127.0.0.1:HTTPPort answers the challenges.
//
// Pebble is the `tool` in go.mod; Start builds it with `go tool -n pebble`,
// which the build cache keeps between runs, and skips the test when that
// fails.
package pebbletest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/testtool"
	"golang.org/x/net/dns/dnsmessage"
)

// Options configures Start. The zero value is a Pebble that validates on a
// free port and issues Pebble's default 90-day certificates.
type Options struct {
	// HTTPPort is the port on 127.0.0.1 Pebble fetches HTTP-01 answers
	// from. Pass the port of a listener you already hold; 0 picks a free
	// port, which you then listen on (Pebble.HTTPPort).
	HTTPPort int
	// Validity of certificates in the "default" profile; 0 keeps 90 days.
	Validity time.Duration
	// Profiles adds named profiles with their certificate validity. Pebble
	// picks a random profile for orders that name none, so once you add
	// profiles set tlscert.Issuer.Profile.
	Profiles map[string]time.Duration
	// AlwaysValid makes Pebble skip validation (PEBBLE_VA_ALWAYS_VALID), for
	// tests that cannot serve on HTTPPort.
	AlwaysValid bool
}

// Pebble is a running Pebble; it stops when the test ends.
type Pebble struct {
	DirectoryURL string
	// HTTPClient trusts the CA of Pebble's own HTTPS listeners.
	HTTPClient *http.Client
	// Roots holds the root Pebble issues under (fresh for every Start).
	Roots *x509.CertPool
	// HTTPPort is where Pebble validates HTTP-01: 127.0.0.1:HTTPPort.
	HTTPPort int
	// CAFile is the PEM CA of Pebble's own HTTPS, for clients in other
	// processes (slipway server --acme-ca-file).
	CAFile string
	stop   func()
}

// Stop ends Pebble before the test does, to see how clients fare when the
// CA is gone.
func (p *Pebble) Stop() { p.stop() }

// Start runs Pebble until the test ends. It skips the test if Pebble
// cannot be built and fails it if Pebble does not come up.
func Start(t testing.TB, opts Options) *Pebble {
	t.Helper()
	bin := testtool.Binary(t, "pebble")

	dnsAddr := startDNS(t)
	dir := t.TempDir()
	caPEM, certFile, keyFile, err := writeServerCert(dir)
	if err != nil {
		t.Fatalf("pebbletest: server certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)

	// Ports are picked by listening and closing, so another process can
	// take one before Pebble binds it; Pebble then exits and we try again.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := start(t, bin, dir, certFile, keyFile, dnsAddr, client, opts)
		if err == nil {
			p.CAFile = filepath.Join(dir, "pebble-https-ca.pem")
			if err := os.WriteFile(p.CAFile, caPEM, 0o600); err != nil {
				t.Fatalf("pebbletest: %v", err)
			}
			return p
		}
		lastErr = err
	}
	t.Fatalf("pebbletest: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, dir, certFile, keyFile, dnsAddr string, client *http.Client, opts Options) (*Pebble, error) {
	ports, err := testtool.FreePorts(4)
	if err != nil {
		return nil, err
	}
	httpPort := opts.HTTPPort
	if httpPort == 0 {
		httpPort = ports[3]
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	mgmt := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))

	type profile struct {
		Description    string `json:"description"`
		ValidityPeriod uint64 `json:"validityPeriod,omitempty"`
	}
	profiles := map[string]profile{"default": {Description: "default", ValidityPeriod: seconds(opts.Validity)}}
	for name, v := range opts.Profiles {
		profiles[name] = profile{Description: name, ValidityPeriod: seconds(v)}
	}
	var cfg struct {
		Pebble map[string]any `json:"pebble"`
	}
	cfg.Pebble = map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": mgmt,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                httpPort,
		"tlsPort":                 ports[2], // TLS-ALPN-01, unused but must not be 0
		"keyAlgorithm":            "ecdsa",  // RSA root and intermediate keys take longer to make
		"profiles":                profiles,
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		return nil, err
	}

	out := &testtool.Output{}
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dnsAddr)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = testtool.SysProcAttr()
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // no random 0-5 s sleep before validating
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce answers
		"PEBBLE_AUTHZREUSE=0",      // every order validates afresh, so tests see Publish each time
		"PEBBLE_VA_ALWAYS_VALID="+strconv.FormatBool(opts.AlwaysValid),
	)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pebble: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}

	p := &Pebble{
		DirectoryURL: "https://" + listen + "/dir",
		HTTPClient:   client,
		HTTPPort:     httpPort,
		stop:         stop,
	}
	if err := waitReady(client, p.DirectoryURL, exited); err != nil {
		stop()
		return nil, fmt.Errorf("%v; pebble said:\n%s", err, out.String())
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("pebble output:\n%s", out.String())
		}
	})
	if p.Roots, err = fetchRoots(client, "https://"+mgmt+"/roots/0"); err != nil {
		t.Fatalf("pebbletest: issuing root: %v", err)
	}
	return p, nil
}

func waitReady(client *http.Client, url string, exited <-chan struct{}) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := client.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(res.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pebble directory not ready after 20s: %v", err)
		}
		select {
		case <-exited:
			return errors.New("pebble exited during startup")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func fetchRoots(client *http.Client, url string) (*x509.CertPool, error) {
	res, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("GET %s: no PEM certificate", url)
	}
	return pool, nil
}

func seconds(d time.Duration) uint64 {
	if d <= 0 {
		return 0 // Pebble's default
	}
	return uint64((d + time.Second - 1) / time.Second)
}

// writeServerCert makes a CA and a certificate for 127.0.0.1 for Pebble's
// HTTPS listeners. Pebble's bundled localhost certificate expires in 2027.
func writeServerCert(dir string) (caPEM []byte, certFile, keyFile string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pebbletest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, "", "", err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", "", err
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "pebble"},
		DNSNames:     []string{"localhost", "pebble"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, "", "", err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), certFile, keyFile, nil
}

// startDNS serves DNS over TCP, the only transport Pebble's -dnsserver
// client uses, answering every A query with 127.0.0.1 and every other
// query with no records (so Pebble never tries IPv6).
func startDNS(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pebbletest: dns: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveDNSConn(ctx, c) })
		}
	})
	return l.Addr().String()
}

func serveDNSConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	for {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		var n [2]byte // DNS over TCP: a 2-byte length before each message
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		a, err := dnsAnswer(q)
		if err != nil {
			return
		}
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(a))), a...)); err != nil {
			return
		}
	}
}

func dnsAnswer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired,
	})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if q.Type == dnsmessage.TypeA && q.Class == dnsmessage.ClassINET {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET}
		if err := b.AResource(rh, dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
