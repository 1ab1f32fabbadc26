package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tlsHost is the name both proxies serve: wrk and h2load take SNI and the
// Host header from the URL and resolve it, so it must be one that resolves.
const tlsHost = "localhost"

// lbTLS is lbVsNginx over HTTPS: both proxies terminate TLS 1.3 with the
// same ECDSA P-256 certificate and key in front of the same backend.
// Three figures, each from rounds A B B A: HTTP/1.1 keep-alive (the goal),
// HTTP/2 keep-alive, and full handshakes (a new connection per request).
// With the load generator on the same two cores, requests per second
// measure the proxy and the generator together; the proxies' CPU time per
// request (from /proc) measures the proxy alone.
func lbTLS(e *env) (map[string]any, string, error) {
	pool, certPEM, keyPEM, err := benchCert(tlsHost)
	if err != nil {
		return nil, "", err
	}
	// The Go clients offer X25519 alone, as OpenSSL 3.0 (wrk, h2load, nginx)
	// does first: Go would also offer X25519MLKEM768, which Slipway would
	// take and nginx cannot, a dearer key exchange on one side only. No
	// session cache: no resumption.
	clientTLS := &tls.Config{RootCAs: pool, ServerName: tlsHost, MinVersion: tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519}, NextProtos: []string{"http/1.1"}}
	wait := &http.Transport{TLSClientConfig: clientTLS}
	defer wait.CloseIdleConnections()
	rig, err := startLBRig(e, &rigTLS{host: tlsHost, certPEM: certPEM, keyPEM: keyPEM, client: &http.Client{Transport: wait}})
	if err != nil {
		return nil, "", err
	}
	defer rig.close()
	sides := [2]side{{rig.slip, []int{rig.proxyPID}}, {rig.nginx, append([]int{rig.nginxPID}, childPIDs(rig.nginxPID)...)}}
	var params [2]string
	for i, s := range sides {
		if params[i], err = negotiated(s.addr, clientTLS); err != nil {
			return nil, "", err
		}
	}
	if params[0] != params[1] {
		return nil, "", fmt.Errorf("the proxies negotiate differently: slipway %s, nginx %s", params[0], params[1])
	}

	const conns, dur = 32, 5 * time.Second
	gen := loadGenerator()
	h1Gen := gen.run
	if gen.name == "go" {
		h1Gen = func(url string, conns int, d time.Duration) result { return driveTLS(url, conns, d, clientTLS, false) }
	}
	h2Name, h2Gen := "h2load", h2load
	if _, err := exec.LookPath("h2load"); err != nil || os.Getenv("SLIPWAY_BENCH_GENERATOR") == "go" {
		h2Name = "go"
		h2Gen = func(url string, conns int, d time.Duration) result { return driveTLS(url, conns, d, clientTLS, true) }
	}
	h1 := abba(sides, dur, func(addr string, d time.Duration) result { return h1Gen(tlsURL(tlsHost, addr), conns, d) })
	h2 := abba(sides, dur, func(addr string, d time.Duration) result { return h2Gen(tlsURL(tlsHost, addr), conns, d) })
	hs := abba(sides, dur, func(addr string, d time.Duration) result { return handshakes(addr, clientTLS, conns, d) })
	errs := 0
	for _, m := range [][2]rate{h1, h2, hs} {
		errs += m[0].errors + m[1].errors
	}
	if errs > 0 {
		return nil, "", fmt.Errorf("%d requests failed", errs)
	}
	met := h1[0].rps >= h1[1].rps
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
	others := [3]float64{(h1[0].others + h1[1].others) / 2, (h2[0].others + h2[1].others) / 2, (hs[0].others + hs[1].others) / 2}
	f := map[string]any{"tls": params[0], "connections": conns, "seconds_per_run": dur.Seconds(),
		"generator": gen.name, "h2_generator": h2Name, "handshake_generator": "go",
		"slipway_rps": h1[0].rps, "nginx_rps": h1[1].rps, "slipway_vs_nginx_rps": h1[0].rps / h1[1].rps,
		"slipway_cpu_us_per_req": us(h1[0].cpuPerReq), "nginx_cpu_us_per_req": us(h1[1].cpuPerReq),
		"h2_slipway_rps": h2[0].rps, "h2_nginx_rps": h2[1].rps, "h2_slipway_vs_nginx_rps": h2[0].rps / h2[1].rps,
		"h2_slipway_cpu_us_per_req": us(h2[0].cpuPerReq), "h2_nginx_cpu_us_per_req": us(h2[1].cpuPerReq),
		"slipway_handshakes_per_s": hs[0].rps, "nginx_handshakes_per_s": hs[1].rps, "slipway_vs_nginx_handshakes": hs[0].rps / hs[1].rps,
		"slipway_cpu_us_per_handshake": us(hs[0].cpuPerReq), "nginx_cpu_us_per_handshake": us(hs[1].cpuPerReq),
		"cpus": runtime.NumCPU(), "generator_and_backend_cores_busy": others,
		"errors": errs, "goal": "≥ 1.0× nginx HTTPS req/s (HTTP/1.1, keep-alive)", "goal_met": met}
	verdict := "met"
	if !met {
		verdict = "NOT met"
	}
	return f, fmt.Sprintf("%s, %d connections. HTTP/1.1 keep-alive (%s): slipway %.0f req/s vs nginx %.0f req/s (%.2f×, goal ≥ 1.0×: %s), proxy CPU per request %.1f vs %.1f µs. "+
		"HTTP/2 (%s): %.0f vs %.0f req/s (%.2f×), %.1f vs %.1f µs. Full handshakes, a connection per request (go): %.0f vs %.0f /s (%.2f×), %.0f vs %.0f µs each. "+
		"Generator and backend kept %.2f, %.2f and %.2f of %d cores busy",
		params[0], conns, gen.name, h1[0].rps, h1[1].rps, h1[0].rps/h1[1].rps, verdict, us(h1[0].cpuPerReq), us(h1[1].cpuPerReq),
		h2Name, h2[0].rps, h2[1].rps, h2[0].rps/h2[1].rps, us(h2[0].cpuPerReq), us(h2[1].cpuPerReq),
		hs[0].rps, hs[1].rps, hs[0].rps/hs[1].rps, us(hs[0].cpuPerReq), us(hs[1].cpuPerReq),
		others[0], others[1], others[2], runtime.NumCPU()), nil
}

// side is one proxy under test: its address and the processes that serve it.
type side struct {
	addr string
	pids []int
}

// rate is one proxy's figures from two rounds.
type rate struct {
	rps       float64 // the mean of the two rounds
	errors    int
	cpuPerReq time.Duration // CPU time of the proxy's processes per request
	// others is the cores this process and its children (the generator,
	// the backend) kept busy meanwhile: near 1 or more, the generator
	// shares the bottleneck with the proxy.
	others float64
}

// abba measures both sides after a warm-up of each, in the order A B B A,
// so that a drift on a shared machine falls on both alike.
func abba(sides [2]side, d time.Duration, run func(addr string, d time.Duration) result) [2]rate {
	for _, s := range sides {
		run(s.addr, time.Second)
	}
	var out [2]rate
	var busy [2]float64
	for _, i := range []int{0, 1, 1, 0} {
		p0, o0, t0 := cpuTime(sides[i].pids...), selfCPUTime(), time.Now()
		r := run(sides[i].addr, d)
		wall := time.Since(t0).Seconds()
		p1, o1 := cpuTime(sides[i].pids...), selfCPUTime()
		out[i].rps += r.rps / 2
		out[i].errors += r.errors
		out[i].others += (o1 - o0).Seconds() / wall / 2
		busy[i] += (p1 - p0).Seconds() / wall / 2
	}
	for i := range out {
		if out[i].rps > 0 {
			out[i].cpuPerReq = time.Duration(busy[i] / out[i].rps * float64(time.Second))
		}
	}
	return out
}

// cpuTime is the user and system time the processes used so far.
func cpuTime(pids ...int) time.Duration {
	var t time.Duration
	for _, pid := range pids {
		if f := procStat(strconv.Itoa(pid)); len(f) > 12 {
			t += ticks(f[11]) + ticks(f[12])
		}
	}
	return t
}

// selfCPUTime is this process's time and its finished children's (wrk, h2load).
func selfCPUTime() time.Duration {
	f := procStat("self")
	if len(f) < 15 {
		return 0
	}
	return ticks(f[11]) + ticks(f[12]) + ticks(f[13]) + ticks(f[14])
}

// procStat is /proc/PID/stat from its third field (the state) on.
func procStat(pid string) []string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil
	}
	_, rest, _ := strings.Cut(string(b), ") ") // the command may hold spaces
	return strings.Fields(rest)
}

func ticks(s string) time.Duration {
	n, _ := strconv.ParseInt(s, 10, 64)
	return time.Duration(n) * time.Second / 100 // USER_HZ
}

// childPIDs are the processes whose parent is pid (nginx's workers).
func childPIDs(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		if f := procStat(ent.Name()); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(ent.Name())
			out = append(out, n)
		}
	}
	return out
}

func tlsURL(host, addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return "https://" + host + ":" + port + "/"
}

func waitServingWith(c *http.Client, url string, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("%s never served", url)
}

// negotiated is what a handshake with addr settles on, for both ALPN
// protocols offered, and checks the certificate is the one for host.
func negotiated(addr string, cfg *tls.Config) (string, error) {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", fmt.Errorf("%s: %w", addr, err)
	}
	defer c.Close()
	st := c.ConnectionState()
	return fmt.Sprintf("%s %s %s ALPN %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), st.CurveID, st.NegotiatedProtocol), nil
}

// benchCert makes a CA and an ECDSA P-256 certificate it signed for host:
// the pool trusting the CA, the certificate's PEM and its key's PEM.
func benchCert(host string) (*x509.CertPool, []byte, []byte, error) {
	newKey := func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }
	caKey, key := newKey(), newKey()
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "slipway bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, nil, nil, err
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// nginxTLSServer writes the certificate and key for nginx and returns its
// server block's TLS directives (nginx 1.22, Debian 12: http2 is a listen
// parameter). nginx 1.22 leaves TLS 1.3 out by default, and OpenSSL would
// take the client's first suite (AES-256-GCM for wrk) where Go takes
// AES-128-GCM: both are set as Slipway has them. keepalive_requests
// matches Slipway, which never closes a busy connection (h2load does not
// reconnect one that nginx closes after its default 1000 requests).
func nginxTLSServer(dir, addr string, t *rigTLS) (string, error) {
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(crt, t.certPEM, 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(key, t.keyPEM, 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf(`listen %s ssl http2;
    server_name %s;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
    keepalive_requests 1000000;`, addr, t.host, crt, key), nil
}

// driveTLS is drive over TLS with cfg, each client on a connection of its
// own: over HTTP/2 a shared transport would put them all on one.
func driveTLS(url string, conns int, d time.Duration, cfg *tls.Config, h2 bool) result {
	var p http.Protocols
	p.SetHTTP1(!h2)
	p.SetHTTP2(h2)
	trs := make([]*http.Transport, conns)
	for i := range trs {
		c := cfg.Clone()
		c.NextProtos = nil // the transport sets them from Protocols
		trs[i] = &http.Transport{TLSClientConfig: c, Protocols: &p}
		defer trs[i].CloseIdleConnections()
	}
	return driveClients(url, conns, d, func(i int) *http.Client { return &http.Client{Transport: trs[i]} })
}

// h2load runs one thread of h2load (Debian's nghttp2-client), one stream
// per connection, and reads its requests per second and errors.
func h2load(url string, conns int, d time.Duration) result {
	out, err := exec.Command("h2load", "-t1", "-c"+strconv.Itoa(conns), "-m1", "-D"+strconv.Itoa(int(d.Seconds())), url).Output()
	if err != nil {
		return result{errors: 1}
	}
	r := result{errors: 1} // until h2load says it spoke HTTP/2
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(strings.ReplaceAll(line, ",", ""))
		switch {
		case len(f) >= 5 && f[0] == "finished" && f[4] == "req/s":
			r.rps, _ = strconv.ParseFloat(f[3], 64)
		case len(f) == 3 && f[0] == "Application" && f[2] == "h2":
			r.errors--
		case len(f) >= 15 && f[0] == "requests:":
			for _, k := range []int{9, 11, 13} { // failed, errored, timeout
				n, _ := strconv.Atoi(f[k])
				r.errors += n
			}
		case len(f) >= 9 && f[0] == "status" && f[1] == "codes:":
			for _, k := range []int{4, 6, 8} { // 3xx, 4xx, 5xx
				n, _ := strconv.Atoi(f[k])
				r.errors += n
			}
		}
	}
	if r.rps == 0 {
		r.errors++
	}
	return r
}

// handshakes sends one request per new TLS connection (Connection: close),
// conns at a time, for d, and counts the responses completed by then. wrk
// cannot do this: on reconnecting it resumes the previous session. cfg has
// no session cache, so every handshake here is a full one.
func handshakes(addr string, cfg *tls.Config, conns int, d time.Duration) result {
	req := []byte("GET / HTTP/1.1\r\nHost: " + cfg.ServerName + "\r\nConnection: close\r\n\r\n")
	end := time.Now().Add(d)
	var done, bad atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			br := bufio.NewReaderSize(nil, 4<<10)
			for time.Now().Before(end) {
				err := fetchOnce(addr, cfg, req, br)
				switch {
				case err != nil:
					bad.Add(1)
				case !time.Now().After(end):
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return result{rps: float64(done.Load()) / d.Seconds(), errors: int(bad.Load())}
}

func fetchOnce(addr string, cfg *tls.Config, req []byte, br *bufio.Reader) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	br.Reset(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	// Read to the server's close, so that the closing side's TIME_WAIT falls
	// on the server's port and the client's ports are free to reuse.
	io.Copy(io.Discard, br)
	return err
}
